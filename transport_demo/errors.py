"""The errors the hub can raise, each with the short code that goes on the wire.

The hub knows nothing about HTTP: the status codes for these live in ``http_errors.py``. A
notebook that calls ``server.hub.publish`` catches these: the package exports at the top level the
ones ``publish`` and the clients raise (see ``transport_demo.__all__``); the request-parsing ones
(``InvalidJSON``, ``InvalidRequest``, ``UnsupportedMediaType``) and ``BackendUnavailable`` are
imported from here.
"""

from __future__ import annotations

from .protocol import ErrorCode

__all__ = [
    "BackendUnavailable",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidText",
    "MessageTooLarge",
    "QueueFull",
    "RateLimited",
    "ServerShuttingDown",
    "TooManyConnections",
    "TooManyConnectionsFromAddress",
    "TransportDemoError",
    "UnknownConnection",
    "UnsupportedMediaType",
]


class TransportDemoError(Exception):
    """Base: ``code`` is the wire code (``"queue_full"``), ``detail`` a sentence for people."""

    code: str = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownConnection(TransportDemoError):
    """No such connection: it expired, never existed, or belongs to another transport."""

    code = ErrorCode.UNKNOWN_CONNECTION


class MessageTooLarge(TransportDemoError):
    """The text is over ``max_message_bytes`` (UTF-8)."""

    code = ErrorCode.MESSAGE_TOO_LARGE


class InvalidText(TransportDemoError):
    """The text is not a string, or not valid Unicode."""

    code = ErrorCode.INVALID_TEXT


class QueueFull(TransportDemoError):
    """The connection has ``max_queue`` events pending: this one was refused, none dropped."""

    code = ErrorCode.QUEUE_FULL


class TooManyConnections(TransportDemoError):
    """The server holds ``max_connections`` connections."""

    code = ErrorCode.TOO_MANY_CONNECTIONS


class TooManyConnectionsFromAddress(TransportDemoError):
    """The client's address already holds ``max_connections_per_address`` connections."""

    code = ErrorCode.TOO_MANY_CONNECTIONS_FROM_ADDRESS


class RateLimited(TransportDemoError):
    """The connection sent texts faster than ``max_messages_per_second`` (after its burst)."""

    code = ErrorCode.RATE_LIMITED


class ServerShuttingDown(TransportDemoError):
    """The server is stopping and takes nothing new."""

    code = ErrorCode.SHUTTING_DOWN


class InvalidJSON(TransportDemoError):
    """A body or frame that is not JSON."""

    code = ErrorCode.INVALID_JSON


class InvalidRequest(TransportDemoError):
    """JSON of the wrong shape."""

    code = ErrorCode.INVALID_REQUEST


class UnsupportedMediaType(TransportDemoError):
    """A body sent with a Content-Type other than JSON."""

    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class BackendUnavailable(TransportDemoError):
    """The shared store (Redis) cannot be reached; try again shortly."""

    code = ErrorCode.BACKEND_UNAVAILABLE
