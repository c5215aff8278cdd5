"""The memory hub's stream (SSE or WebSocket) attached to a connection.

A router gets one from ``aopen_stream`` (:class:`~transport_demo.server.delivery.Delivery`),
iterates :meth:`Stream.batches` and writes each batch, and calls :meth:`Stream.aclose` when its
socket is gone. The loop is :class:`~transport_demo.server.stream_loop.StreamLoop`'s; here are
its two store operations (take, heartbeat) on the memory store, through the registry's public
methods (:class:`~transport_demo.server.registry.Registry`: ``lock``, ``wake``, ``release``,
``count``, ``now``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events
from .protocol import EndReason
from .stream_loop import StreamLoop
from .waiters import MAX_UNSENT_ERRORS, Outgoing, Waiter

if TYPE_CHECKING:
    from .connection import Connection
    from .expiry_wheel import ExpiryWheel
    from .registry import Registry

__all__ = ["Stream"]


class Stream(StreamLoop, Waiter):
    """A stream (SSE or WebSocket) attached to a connection; made by ``aopen_stream``.

    Iterate :meth:`batches` (or :meth:`events`) and write each item; call :meth:`close` when the
    socket is gone (in a ``finally``). The iteration ends by itself when another stream takes over
    (``ended == "superseded"``) or the server shuts down (``"shutdown"``).
    """

    __slots__ = ("connected", "hub", "outbox")

    def __init__(self, hub: Registry[Any], conn: Connection) -> None:
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

    def _expiry_wheel(self) -> ExpiryWheel:
        return self.hub.expiry_wheel()

    async def areceive(self, text: str) -> int:
        """The client sent ``text`` on this stream: queue its echo, return the seq."""
        return await self.hub.areceive(self.conn.id, text, self.conn.transport)

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

    async def aclose(self) -> None:
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
