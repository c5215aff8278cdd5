"""The Origin allow-list: one list drives CORS on the HTTP endpoints and the WebSocket check.

An entry is an exact origin (``http://10.0.0.5:8000``), an origin with any port
(``http://localhost:*``), ``null`` (a page opened from a file), or ``*`` (anything: only for a
closed classroom network).
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def origin_regex(allowed: Iterable[str]) -> str:
    """A regular expression matching exactly the allowed origins (for CORS and :func:`allowed`)."""
    parts = []
    for entry in allowed:
        entry = entry.strip().rstrip("/")
        if entry == "*":
            parts.append(r".*")
        elif entry.endswith(":*"):
            parts.append(re.escape(entry[:-2]) + r"(?::[0-9]{1,5})?")
        else:
            parts.append(re.escape(entry))
    return "^(?:" + "|".join(parts or ["(?!)"]) + ")$"


class OriginPolicy:
    """Decides whether a request's ``Origin`` may use the server."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)
        self.regex = origin_regex(self.allowed)
        self._pattern = re.compile(self.regex)

    def allows(self, origin: str | None, host: str | None = None) -> bool:
        """True for an allowed origin, the server's own origin, or no ``Origin`` at all.

        No ``Origin`` header means no browser sent it (browsers always send one on a WebSocket
        handshake), and cross-site hijacking needs a browser; command-line clients may connect.
        """
        if origin is None:
            return True
        if host is not None and origin in (f"http://{host}", f"https://{host}"):
            return True
        return self._pattern.fullmatch(origin) is not None
