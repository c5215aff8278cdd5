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
    default_detail: str = "The request failed."
    """The sentence used when none is given: each error's wording exists once, here."""

    def __init__(self, detail: str | None = None) -> None:
        detail = self.default_detail if detail is None else detail
        super().__init__(detail)
        self.detail = detail


class UnknownConnection(TransportDemoError):
    """No such connection: it expired, never existed, or belongs to another transport."""

    code = ErrorCode.UNKNOWN_CONNECTION
    # The same answer for "expired", "never existed" and "another transport's id": an id is a
    # key, and the answer must not tell a guesser which ids exist elsewhere.
    default_detail = "No such connection: it expired or never existed. Start a new connection."


class MessageTooLarge(TransportDemoError):
    """The text is over ``max_message_bytes`` (UTF-8)."""

    code = ErrorCode.MESSAGE_TOO_LARGE


class InvalidText(TransportDemoError):
    """The text is not a string, or not valid Unicode."""

    code = ErrorCode.INVALID_TEXT


class QueueFull(TransportDemoError):
    """The connection has ``max_queue`` events pending: this one was refused, none dropped."""

    code = ErrorCode.QUEUE_FULL

    @classmethod
    def of(cls, pending: int | str, limit: int) -> QueueFull:
        """The refusal of an event when ``pending`` events wait and ``limit`` may."""
        return cls(
            f"{pending} events are waiting for this connection (the limit is {limit}); this one "
            "was refused, none were dropped."
        )


class TooManyConnections(TransportDemoError):
    """The server holds ``max_connections`` connections."""

    code = ErrorCode.TOO_MANY_CONNECTIONS

    @classmethod
    def of(cls, limit: int) -> TooManyConnections:
        return cls(f"The server holds its maximum of {limit} connections; try again later.")


class TooManyConnectionsFromAddress(TransportDemoError):
    """The client's address already holds ``max_connections_per_address`` connections."""

    code = ErrorCode.TOO_MANY_CONNECTIONS_FROM_ADDRESS

    @classmethod
    def of(cls, address: str | None, limit: int | None) -> TooManyConnectionsFromAddress:
        return cls(
            f"Your address ({address}) already holds {limit} connections, the most this server "
            "allows per address. Close some tabs or clients, or wait until old connections "
            "expire."
        )


class RateLimited(TransportDemoError):
    """The connection sent texts faster than ``max_messages_per_second`` (after its burst)."""

    code = ErrorCode.RATE_LIMITED


class ServerShuttingDown(TransportDemoError):
    """The server is stopping and takes nothing new."""

    code = ErrorCode.SHUTTING_DOWN
    default_detail = "The server is shutting down."


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
    default_detail = "The shared store (Redis) is unavailable; try again shortly."
