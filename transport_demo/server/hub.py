"""The hub: the registry of connections, the lock, waking waiters across threads, the reaper, stats.

The delivery rules themselves (seq, replay buffer, acknowledgement, resume) are the sans-I/O core in
:mod:`transport_demo.server.connection`; which connections exist and who waits on each is the
registry's
(:mod:`transport_demo.server.registry`, the base class); the hub applies the rules under its lock
and
wakes whoever waits: a held long poll, or an attached :class:`~transport_demo.server.stream.Stream`.
Routers turn requests into calls here and write what comes back; the hub's answers are
already-encoded JSON text, and it knows nothing about HTTP.

Threading: the state belongs to the server's event loop, but :meth:`Hub.publish` and
:meth:`Hub.broadcast` may be called from any thread (a notebook's). A ``threading.Lock`` guards the
state, so those calls return their seq at once without a round trip to the loop; only the wake-up of
a waiting stream crosses over, with ``call_soon_threadsafe``, batched: one loop wake-up per burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import held_polls
from .connection import check_text
from .errors import QueueFull
from .protocol import EndReason, EventType, Transport
from .registry import Registry
from .settings import Settings
from .stats import StatsTally
from .stream import Stream, open_stream
from .waiters import Outgoing

__all__ = ["Hub", "Outgoing", "Stream", "Transport"]


class Hub(Registry):
    """Connections, their waiters and counters (:class:`~transport_demo.server.registry.Registry`),
    publishing from any thread, the transports' operations, the reaper and ``/stats``; the
    delivery rules are :class:`~transport_demo.server.connection.Connection`'s.

    Call :meth:`start` on the server's loop before use and :meth:`close` when the server stops.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, clock=clock)
        self._reaper: asyncio.Task[None] | None = None
        self._started = clock()

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and start the task that removes expired connections."""
        self._wakeups.bind(asyncio.get_running_loop())
        self._closing = False
        self._reaper = asyncio.create_task(self._reap_forever(), name="transport-demo-reaper")

    async def close(self, timeout: float = 0.5) -> None:
        """End every stream and held poll (``shutdown``), refuse new ones, and give them up to
        ``timeout`` seconds to write their last words (a poll's answer, a WebSocket close)."""
        with self.lock:
            self._closing = True
            for waiter in self._waiters.values():
                self.end(waiter, EndReason.SHUTDOWN)
        deadline = asyncio.get_running_loop().time() + timeout
        while self._waiters and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    # -- durable events -------------------------------------------------------------------------

    def publish(self, connection_id: str, text: str) -> int:
        """Queue a durable ``message`` for one connection and return its seq. Any thread.

        Raises :class:`UnknownConnection`, :class:`MessageTooLarge`, :class:`QueueFull`.
        """
        text = check_text(text, self.settings.max_message_bytes)
        with self.lock:
            self.refuse_if_closing()
            seq = self.append(self.find(connection_id), EventType.MESSAGE, text)
            self._counters["messages_published"] += 1
            return seq

    def broadcast(self, text: str) -> int:
        """Queue a durable ``message`` for every connection; return how many took it. Any thread.

        A connection whose queue is full is skipped (it is not counted); the others still get it.
        """
        text = check_text(text, self.settings.max_message_bytes)
        count = 0
        with self.lock:
            self.refuse_if_closing()
            for conn in self._store:
                try:
                    self.append(conn, EventType.MESSAGE, text)
                except QueueFull:
                    continue
                count += 1
            self._counters["messages_published"] += count
        return count

    # -- the transports' operations ---------------------------------------------------------

    def connect_long_poll(self, address: str | None = None) -> str:
        """Create a long-polling connection for a client at ``address``; return its encoded
        ``connected`` event."""
        return held_polls.connect(self, address)

    async def apoll(
        self,
        connection_id: str,
        last_seq: int | None = None,
        *,
        hold: float | None = None,
    ) -> str:
        """Answer a long poll (:func:`transport_demo.server.held_polls.poll`)."""
        return await held_polls.poll(self, connection_id, last_seq, hold=hold)

    async def asend_and_poll(
        self, connection_id: str, text: str, last_seq: int | None = None
    ) -> str:
        """A text sent on long polling (:func:`transport_demo.server.held_polls.send_and_poll`)."""
        return await held_polls.send_and_poll(self, connection_id, text, last_seq)

    def open_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
        *,
        address: str | None = None,
    ) -> Stream:
        """Attach an SSE or WebSocket stream (:func:`transport_demo.server.stream.open_stream`)."""
        return open_stream(self, transport, connection_id, last_seq, address=address)

    # -- the async interface the routers use (transport_demo.server.backend.Backend)
    # -------------------
    # In memory these finish at once; a shared store (transport_demo.server.redis_hub) awaits its
    # I/O.

    async def aconnect_long_poll(self, address: str | None = None) -> str:
        """:meth:`connect_long_poll`, awaitable."""
        return self.connect_long_poll(address)

    async def areceive(self, connection_id: str, text: str, transport: Transport) -> int:
        """:meth:`receive`, awaitable."""
        return self.receive(connection_id, text, transport)

    async def aopen_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
        *,
        address: str | None = None,
    ) -> Stream:
        """:meth:`open_stream`, awaitable."""
        return self.open_stream(transport, connection_id, last_seq, address=address)

    async def astats(self) -> dict[str, Any]:
        """:meth:`stats`, awaitable."""
        return self.stats()

    # -- cleanup --------------------------------------------------------------------------------

    def reap(self) -> int:
        """Remove connections past their expiry; return how many. The reaper task calls this."""
        now = self._clock()
        poll_expiry = self.settings.effective_poll_expiry
        grace = self.settings.resume_grace
        with self.lock:
            waiters = self._waiters
            expired = [
                conn.id
                for conn in self._store
                if conn.expired(
                    now,
                    attached=conn.id in waiters,
                    poll_expiry=poll_expiry,
                    grace=grace,
                )
            ]
            for connection_id in expired:
                self._store.remove(connection_id)
                self._admission.forget(connection_id)
            self._counters["connections_expired"] += len(expired)
        return len(expired)

    def _reap_interval(self) -> float:
        shortest = min(self.settings.effective_poll_expiry, self.settings.resume_grace or 0.25)
        return min(1.0, max(0.05, shortest / 5))

    async def _reap_forever(self) -> None:
        interval = self._reap_interval()
        while True:
            await asyncio.sleep(interval)
            self.reap()

    # -- monitoring -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and a per-connection list for ``/stats``: short ids only, never message text."""
        now, wall = self._clock(), time.time()
        tally = StatsTally()
        with self.lock:
            for conn in self._store:
                attached = conn.id in self._waiters
                tally.add(
                    conn.transport.value,
                    conn.state(attached=attached),
                    partial(conn.summary, attached=attached, now=now, wall=wall),
                )
            return tally.answer(
                self._counters,
                now - self._started,
                self._admission.addresses.addresses(),
            )
