"""The memory hub: connections in this process's memory (the default, the fast path).

A :class:`~transport_demo.server.delivery.Delivery` over the memory store: the registry of
connections and waiters, its lock and cross-thread wake-ups, are
:class:`~transport_demo.server.registry.Registry`'s; the rules of one connection (seq, replay
buffer, acknowledgement, resume) are the sans-I/O core's (:mod:`transport_demo.server.connection`);
everything above the store (``connected`` events, held polls, the echo rule, ends, close) is the
delivery layer's. Here: the rest of the store interface, publishing from any thread, the reaper
and ``/stats``. The hub's answers are already-encoded JSON text; it knows nothing about HTTP.

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

from . import events
from .connection import Connection, check_text
from .errors import QueueFull
from .protocol import EventType, Transport
from .registry import Registry
from .settings import Settings
from .stats import StatsTally
from .stream import Stream
from .waiters import Outgoing, Waiter

__all__ = ["Hub", "MemoryPollSteps", "Outgoing", "Stream", "Transport"]


class Hub(Registry[Stream]):
    """The memory hub; see the module docstring.

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

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and start the task that removes expired connections."""
        self._bind_loop()
        self._wakeups.bind(asyncio.get_running_loop())
        self._reaper = asyncio.create_task(self._reap_forever(), name="transport-demo-reaper")

    async def _astop(self) -> None:
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
            self.check_ready()
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
            self.check_ready()
            for conn in self._store:
                try:
                    self.append(conn, EventType.MESSAGE, text)
                except QueueFull:
                    continue
                count += 1
            self._counters["messages_published"] += count
        return count

    # -- the store interface (transport_demo.server.delivery.Delivery) -----------------------

    async def _acreate_poll(self, address: str | None) -> str:
        with self.lock:
            return self.create(Transport.LONG_POLLING, address).id

    async def _acreate_stream(self, transport: Transport, address: str | None) -> Stream:
        with self.lock:
            return self._attach_stream(self.create(transport, address), None)[0]

    async def _aresume_stream(
        self, transport: Transport, connection_id: str, last_seq: int | None
    ) -> tuple[Stream, int] | None:
        with self.lock:
            conn = self.lookup(connection_id, transport)
            if conn is None:
                return None
            return self._attach_stream(conn, last_seq)

    def _attach_stream(self, conn: Connection, last_seq: int | None) -> tuple[Stream, int]:
        stream = Stream(self, conn)
        self.attach(conn, stream)
        point = conn.resume(last_seq)
        conn.detached_at = None
        conn.last_seen = self._clock()
        return stream, point

    def _poll_steps(self, last_seq: int | None) -> MemoryPollSteps:
        return MemoryPollSteps(self, last_seq)

    def disconnect_all(self, transport: Transport | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (``None``: of all three); return how
        many. Any thread. For teaching: the room watches its clients reconnect and resume.

        The connections stay, so every client resumes with nothing lost. What each transport
        sees: a held long poll is answered at once, ``timeout`` with ``reason: "cut"`` (between
        polls there is nothing to cut; the next poll carries ``last_seq`` as always); an SSE
        stream's response ends, and the client reconnects with ``Last-Event-ID``; a WebSocket is
        closed with 1012 (IANA's "service restart": come back after a randomized delay), since an
        ASGI application cannot drop a TCP connection without a close frame.
        """
        return self._cut(transport)

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

    async def astats(self) -> dict[str, Any]:
        """:meth:`stats`, awaitable."""
        return self.stats()

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


class MemoryPollSteps:
    """:class:`~transport_demo.server.held_polls.PollSteps` on the memory hub: each step under
    the hub's lock."""

    __slots__ = ("hub", "last_seq")

    def __init__(self, hub: Hub, last_seq: int | None) -> None:
        self.hub = hub
        self.last_seq = last_seq

    async def poll_begin(
        self, connection_id: str, last_seq: int | None, hold: float
    ) -> tuple[str | None, Waiter | None]:
        hub = self.hub
        with hub.lock:
            hub.check_ready()
            conn = hub.find(connection_id, Transport.LONG_POLLING)
            conn.last_seen = hub.now()
            answer = _answer(hub, conn, last_seq)
            # At most one held poll: an older one ends, empty, even when this one answers at once.
            waiter = Waiter(conn)
            hub.attach(conn, waiter)
            if answer is not None or hold <= 0:
                hub.release(waiter)
                return answer, None
            return None, waiter

    async def poll_again(self, waiter: Waiter) -> str | None:
        with self.hub.lock:
            if waiter.ended is not None:
                return None
            # Acknowledging the same last_seq again (each wake-up) changes nothing.
            return _answer(self.hub, waiter.conn, self.last_seq)

    async def poll_final(self, waiter: Waiter) -> str | None:
        with self.hub.lock:
            return _answer(self.hub, waiter.conn, self.last_seq)

    async def poll_end(self, waiter: Waiter) -> None:
        hub = self.hub
        with hub.lock:
            hub.release(waiter)
            waiter.conn.last_seen = hub.now()


def _answer(hub: Hub, conn: Connection, last_seq: int | None) -> str | None:
    # Acknowledging the same last_seq again (each time a held poll wakes) changes nothing.
    batch = conn.poll_batch(last_seq)
    if not batch:
        return None
    hub.count("events_sent", len(batch))
    return events.poll_batch(conn.id, batch)
