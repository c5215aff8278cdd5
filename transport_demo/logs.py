"""Logging: ids redacted everywhere, and for the in-notebook server, nothing printed.

A full connection id is the key to a long-polling connection, and uvicorn logs request paths with
their query (``/ws?connection_id=…``), so every record of ours and uvicorn's passes through
:class:`RedactIds` first.
"""

from __future__ import annotations

import logging
import re
from collections import deque

LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "transport_demo")

_UUID = re.compile(
    r"\b([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)


def redact(text: str) -> str:
    """Every uuid in ``text`` cut to its first 8 characters and an ellipsis."""
    return _UUID.sub(r"\1…", text)


class RedactIds(logging.Filter):
    """Rewrites a record's message with its ids redacted (it always lets the record through)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RecentLogs(logging.Handler):
    """Keeps the last records in memory instead of printing them into a random notebook cell."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a logging failure must not become a server failure
            self.handleError(record)


class DropSpuriousDenialError(logging.Filter):
    """Drops uvicorn's "returned without completing handshake" error after a denial response.

    uvicorn's websockets-sansio protocol does not mark the handshake complete when the app refuses
    it with an HTTP response (our 403 for a foreign Origin), and logs this error although the
    refusal went out correctly (tests/test_websocket.py refuses a foreign Origin). Our endpoint
    always accepts or refuses, so the message never means anything else here.
    """

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.MESSAGE


recent = RecentLogs()
_FILTERS = (RedactIds(), DropSpuriousDenialError())


def install_filters() -> None:
    """Redact ids in every record logged by uvicorn and by this package; drop known noise."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for log_filter in _FILTERS:
            if log_filter not in logger.filters:
                logger.addFilter(log_filter)


def keep_quiet() -> None:
    """Send uvicorn's and our records to :data:`recent` only (for a server in a notebook)."""
    install_filters()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if recent not in logger.handlers:
            logger.addHandler(recent)
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
