"""Streams (SSE and WebSocket) attached to a connection, and the waiter both streams and held
polls are.

A router calls :func:`open_stream` (through :meth:`Hub.open_stream`), iterates
:meth:`Stream.batches` and writes each batch, and calls :meth:`Stream.close` when its socket is
gone. The stream and :mod:`transport_demo.server.held_polls` use the registry's public methods
(:class:`~transport_demo.server.registry.Registry`: ``lock``, ``lookup``, ``create``, ``attach``,
``release``, ``wake``, ``receive``, ``count``, ``now``), never its private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events
from .errors import UnknownConnection
from .protocol import EndReason, Transport
from .stream_loop import StreamLoop
from .waiters import MAX_UNSENT_ERRORS, Outgoing, Waiter

if TYPE_CHECKING:
    from .connection import Connection
    from .registry import Registry

__all__ = ["Stream", "open_stream"]


class Stream(StreamLoop, Waiter):
    """A stream (SSE or WebSocket) attached to a connection; made by :meth:`Hub.open_stream`.

    Iterate :meth:`batches` (or :meth:`events`) and write each item; call :meth:`close` when the
    socket is gone (in a ``finally``). The iteration ends by itself when another stream takes over
    (``ended == "superseded"``) or the server shuts down (``"shutdown"``).
    """

    __slots__ = ("connected", "hub", "outbox")

    def __init__(self, hub: Registry, conn: Connection) -> None:
        super().__init__(conn)
        self.hub = hub
        self.connected = Outgoing("")
        self.outbox: list[Outgoing] = []  # non-durable events for this stream only (errors)

    @property
    def connection_id(self) -> str:
        """The id of the connection this stream is attached to."""
        return self.conn.id

    @property
    def heartbeat_interval(self) -> float:
        return self.hub.settings.heartbeat_interval

    def _connection_id(self) -> str:
        return self.conn.id

    def receive(self, text: str) -> int:
        """The client sent ``text`` on this stream: queue its echo, return the seq."""
        return self.hub.receive(self.conn.id, text, self.conn.transport)

    async def areceive(self, text: str) -> int:
        """:meth:`receive`, awaitable (the interface a shared store's stream also has)."""
        return self.hub.receive(self.conn.id, text, self.conn.transport)

    async def aclose(self) -> None:
        """:meth:`close`, awaitable."""
        self.close()

    def send_error(self, code: str, detail: str) -> bool:
        """Queue an ``error`` event for this stream only (not durable, never replayed).

        Returns ``False`` when ``MAX_UNSENT_ERRORS`` are already waiting: a client that keeps
        sending bad frames without reading is not worth more memory, and the caller should close.
        """
        event = events.encode(events.error_event(self.conn.id, code, detail))
        with self.hub.lock:
            if len(self.outbox) >= MAX_UNSENT_ERRORS:
                return False
            self.outbox.append(Outgoing(event))
            self.hub.wake(self)
            return True

    def close(self) -> None:
        """The socket is gone: detach, so the connection waits out its resume grace."""
        hub = self.hub
        with hub.lock:
            if self.ended is None:
                self.ended = EndReason.CLOSED
            if hub.release(self):
                self.conn.detached_at = self.conn.last_seen = hub.now()

    async def _take(self) -> list[Outgoing] | None:
        """What to write now, marked as written; ``None`` when the stream must end."""
        with self.hub.lock:
            if self.ended is not None:
                return None
            out, self.outbox = self.outbox, []
            batch = self.conn.take_unsent()
            if batch:
                self.hub.count("events_sent", len(batch))
                prefix = self.conn.id + ":"
                out.extend(Outgoing(data, prefix + str(seq)) for seq, data in batch)
            return out

    async def _heartbeat(self) -> Outgoing | None:
        with self.hub.lock:
            if self.ended is not None:
                return None
            self.hub.count("heartbeats_sent")
            return Outgoing(events.heartbeat_event(self.conn.id, self.conn.beat()))


def open_stream(
    hub: Registry,
    transport: Transport,
    connection_id: str | None = None,
    last_seq: int | None = None,
    *,
    address: str | None = None,
) -> Stream:
    """Attach a stream: resume ``connection_id`` after ``last_seq``, or start a new connection.

    An unknown or expired id (or another transport's) starts a new connection, and its
    ``connected`` event says ``"resumed": false`` and ``"resume_failed": "unknown_connection"``.
    A stream still attached to the resumed connection is ended (``superseded``): the new one takes
    over and replays everything after ``last_seq`` (everything unacknowledged if absent).
    ``address`` is the client's, counted against ``max_connections_per_address`` when a new
    connection is made.
    """
    with hub.lock:
        conn = hub.lookup(connection_id, transport)
        extra: dict[str, Any] = {}
        resumed = conn is not None
        if conn is None:
            conn = hub.create(transport, address)
            if connection_id is not None:
                extra["resume_failed"] = UnknownConnection.code
                hub.count("resumes_failed")
        else:
            hub.count("streams_resumed")
        stream = Stream(hub, conn)
        hub.attach(conn, stream)
        point = conn.resume(last_seq if resumed else None)
        conn.detached_at = None
        conn.last_seen = hub.now()
        settings = hub.settings
        connected = events.stream_connected(
            conn.id,
            transport.value,
            resumed=resumed,
            last_seq=point,
            heartbeat_interval=settings.heartbeat_interval,
            resume_grace=settings.resume_grace,
            **extra,
        )
        stream.connected = Outgoing(connected, f"{conn.id}:{point}")
        return stream
