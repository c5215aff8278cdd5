"""The protocol's vocabulary, defined once: transports, event types, reasons, error and close codes.

Everything here is a string or an integer enum whose value is exactly what goes on the wire (or,
for :class:`ClientNote`, what the clients and client.html put in their own events), so a member
compares equal to the plain value: ``EventType.MESSAGE == "message"``. The server, the clients,
the widgets and the exercises all import their names from here; docs/protocol.md describes them.

This module imports nothing but the standard library, so a client can use it without FastAPI.
"""

from __future__ import annotations

import enum

__all__ = [
    "DURABLE_EVENT_TYPES",
    "END_CLOSES",
    "FINAL_CLOSE_CODES",
    "SHUTDOWN_CLOSE",
    "ClientNote",
    "ClientState",
    "CloseCode",
    "ConnectionState",
    "EndReason",
    "ErrorCode",
    "EventType",
    "Transport",
]


class Transport(enum.StrEnum):
    """The transports; the value is the name used on the wire and in /stats."""

    LONG_POLLING = "long-polling"
    SSE = "sse"
    WEBSOCKET = "websocket"
    WEBTRANSPORT = "webtransport"  # WebTransport over HTTP/3 (QUIC, UDP)


class EventType(enum.StrEnum):
    """The ``type`` of every event the server sends."""

    CONNECTED = "connected"
    MESSAGE = "message"  # durable; on long polling also the answer that carries a batch
    USER_MESSAGE = "user_message"  # durable: a WebSocket or WebTransport client's text, echoed
    HEARTBEAT = "heartbeat"
    TIMEOUT = "timeout"  # a long poll ended with nothing to deliver
    QUEUED = "queued"  # the answer to POST /sse/message
    ERROR = "error"


DURABLE_EVENT_TYPES = frozenset({EventType.MESSAGE, EventType.USER_MESSAGE})
"""Event types that carry a ``seq`` and are replayed on resume."""


class EndReason(enum.StrEnum):
    """Why a held poll or an attached stream ended; a long poll's ``timeout`` carries it as
    ``reason``."""

    HOLD_EXPIRED = "hold_expired"  # the poll was held for poll_timeout and nothing came
    SUPERSEDED = "superseded"  # a newer poll, send or resumed stream took the connection over
    SHUTDOWN = "shutdown"  # the server is stopping
    CUT = "cut"  # the server's operator cut every connection of a transport (Hub.disconnect_all)
    CLOSED = "closed"  # the stream's socket is gone
    EXPIRED = "expired"  # the connection is gone from the shared store (expired, or Redis lost it)
    BACKEND_UNAVAILABLE = "backend_unavailable"  # the shared store (Redis) cannot be reached


class ConnectionState(enum.StrEnum):
    """A connection's state in /stats."""

    LIVE = "live"  # a stream is attached or a poll is held
    WAITING = "waiting"  # long polling, between two polls
    DISCONNECTED = "disconnected"  # a stream was cut; the connection waits out its resume grace


class ErrorCode(enum.StrEnum):
    """The ``error`` field of an error answer or event."""

    UNKNOWN_CONNECTION = "unknown_connection"
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_TEXT = "invalid_text"
    QUEUE_FULL = "queue_full"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    TOO_MANY_CONNECTIONS_FROM_ADDRESS = "too_many_connections_from_address"
    RATE_LIMITED = "rate_limited"  # a client sent texts faster than its connection may
    SHUTTING_DOWN = "shutting_down"
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    HOST_NOT_ALLOWED = "host_not_allowed"  # a Host header that does not name this server (421)
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BACKEND_UNAVAILABLE = "backend_unavailable"  # the shared store (Redis) cannot be reached


class CloseCode(enum.IntEnum):
    """WebSocket close codes this server sends, or a client meets (RFC 6455 §7.4.1); a
    WebTransport session closes with the same numbers as its application error code."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect later
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009  # a *message* over the limit (it may have spanned several frames)
    # Never sent on the wire (RFC 6455 §7.4.1): what a client reports when the TCP connection
    # ended without a close frame.
    ABNORMAL_CLOSURE = 1006
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # IANA's registry: restarting; come back after a randomized delay
    TRY_AGAIN_LATER = 1013  # IANA's registry: the shared store (Redis) is unavailable for now
    SUPERSEDED = 4000  # this server's own: a newer socket resumed this connection


FINAL_CLOSE_CODES = frozenset({CloseCode.NORMAL, CloseCode.SUPERSEDED})
"""Close codes after which a client must not reconnect."""

SHUTDOWN_CLOSE = (CloseCode.GOING_AWAY, "server shutting down")
"""How a socket or session ends when the server stops."""
END_CLOSES: dict[EndReason | None, tuple[int, str]] = {
    EndReason.SUPERSEDED: (CloseCode.SUPERSEDED, "superseded by a resumed connection"),
    EndReason.CUT: (
        CloseCode.SERVICE_RESTART,
        "cut by the server: reconnect after a randomized delay",
    ),
    EndReason.BACKEND_UNAVAILABLE: (CloseCode.TRY_AGAIN_LATER, "backend unavailable, try again"),
    EndReason.EXPIRED: (CloseCode.GOING_AWAY, "connection lost, reconnect"),
}
"""How the server closes a WebSocket (or a WebTransport session) the hub ended, and why; any
other end (shutdown) is :data:`SHUTDOWN_CLOSE`."""


class ClientNote(enum.StrEnum):
    """Events a client makes itself (they carry ``"client": true``; no server event does).
    The Python clients and client.html use the same names."""

    RECONNECTING = "reconnecting"
    RECONNECTED = "reconnected"
    NEW_CONNECTION = "new_connection"
    GAP = "gap"
    ERROR = "error"
    CLOSED = "closed"


class ClientState(enum.StrEnum):
    """What a client is doing (``client.state``; the widgets show it)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"  # a stream or socket is open (long polling: a poll was just answered)
    WAITING = "waiting"  # long polling: a poll is held
    RECONNECTING = "reconnecting"  # waiting out a backoff before trying again
    CLOSED = "closed"
    ERROR = "error"  # gave up: a refusal that retrying cannot fix
