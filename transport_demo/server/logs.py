"""Logging: ids redacted everywhere, and for the in-notebook server, nothing printed.

A full connection id is the key to a long-polling connection, and uvicorn logs request paths with
their query (``/ws?connection_id=…``), so every record of ours and uvicorn's passes through
:class:`RedactIds` first.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping

LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "transport_demo")

_UUID = re.compile(
    r"\b([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)


def redact(text: str) -> str:
    """Every uuid in ``text`` cut to its first 8 characters and an ellipsis."""
    return _UUID.sub(r"\1…", text)


def _redacted_value(value: object) -> object:
    """``value`` with its ids redacted: ``value`` itself when it shows none.

    A str is redacted as it is. Numbers are kept (a ``%d`` needs a number, and no number prints
    as a uuid). Any other object that prints a uuid (a ``uuid.UUID``, an exception naming a
    connection) becomes its redacted text, which ``%s`` prints the same way.
    """
    if value is None or isinstance(value, int | float):
        return value
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # an object that cannot print itself: the formatter will report it
        return value
    redacted = redact(text)
    return value if redacted == text else redacted


class RedactIds(logging.Filter):
    """Redacts the ids in a record's message and arguments (it always lets the record through).

    The redaction happens inside ``record.msg`` and ``record.args``, keeping their shape, rather
    than replacing the message by its formatted text with no arguments: a formatter may read the
    arguments itself. uvicorn's ``AccessFormatter`` unpacks them as ``(client_addr, method,
    full_path, http_version, status_code)``, and failed with a "Logging error" and a traceback
    (the access line lost) on every resume whose query named a connection.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redacted_value(record.msg)
        args = record.args
        # Identity, not ==, tells what changed: an argument's __eq__ may be anything (an array's).
        if isinstance(args, tuple):
            values = tuple(_redacted_value(value) for value in args)
            if any(new is not old for new, old in zip(values, args, strict=True)):
                record.args = values
        elif isinstance(args, Mapping):  # logger.info("%(name)s", {"name": ...})
            mapping = {key: _redacted_value(value) for key, value in args.items()}
            if any(mapping[key] is not value for key, value in args.items()):
                record.args = mapping
        # On a terminal, uvicorn's formatters print ``color_message`` (the message with colour
        # codes, formatted with the same arguments) instead of ``msg``.
        color_message = record.__dict__.get("color_message")
        if isinstance(color_message, str):
            record.color_message = redact(color_message)
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
