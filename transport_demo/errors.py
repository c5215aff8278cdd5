"""The errors the hub can raise, each with the short code that goes on the wire.

The hub knows nothing about HTTP: the status codes for these live in ``http_errors.py``.
"""

from __future__ import annotations


class TransportDemoError(Exception):
    """Base: ``code`` is the wire code (``"queue_full"``), ``detail`` a sentence for people."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownConnection(TransportDemoError):
    code = "unknown_connection"


class MessageTooLarge(TransportDemoError):
    code = "message_too_large"


class InvalidText(TransportDemoError):
    code = "invalid_text"


class QueueFull(TransportDemoError):
    code = "queue_full"


class TooManyConnections(TransportDemoError):
    code = "too_many_connections"


class ServerShuttingDown(TransportDemoError):
    code = "shutting_down"


class InvalidJSON(TransportDemoError):
    code = "invalid_json"


class InvalidRequest(TransportDemoError):
    code = "invalid_request"


class UnsupportedMediaType(TransportDemoError):
    code = "unsupported_media_type"
