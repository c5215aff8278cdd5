"""The stream loop, once for both stores: ``connected``, then what the store has for the stream
(taken, marked as written), with heartbeats when due, until the stream must end.

:class:`StreamLoop` is a mixin: a store's stream class
(:class:`~transport_demo.server.stream.Stream` in
memory, :class:`~transport_demo.server.redis_waiters.RedisStream` on Redis) supplies the store
operations —
``_take`` (what to write now, ``None`` when the stream must end) and ``_heartbeat`` (the next
beat, ``None`` likewise) — and ``wakeup``, ``ended``, ``connected``, ``heartbeat_interval``,
``_connection_id()`` and ``_expiry_wheel()`` (its hub's timer wheel); the loop, its heartbeat
timer and its last words are here.
A store that can fail raises :class:`~transport_demo.server.errors.BackendUnavailable` from either
operation: the stream then says so in an ``error`` event and ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from . import events
from .errors import BackendUnavailable, UnknownConnection
from .expiry_wheel import ExpiryWheel
from .protocol import EndReason, ErrorCode
from .waiters import Outgoing
from .wakeups import Wakeup

__all__ = ["StreamLoop"]


class StreamLoop:
    """The loop every stream runs; see the module docstring."""

    __slots__ = ()

    wakeup: Wakeup
    ended: EndReason | None
    connected: Outgoing

    @property
    def heartbeat_interval(self) -> float:
        raise NotImplementedError

    def _connection_id(self) -> str:
        raise NotImplementedError

    def _expiry_wheel(self) -> ExpiryWheel:
        raise NotImplementedError

    async def _take(self) -> list[Outgoing] | None:
        raise NotImplementedError

    async def _heartbeat(self) -> Outgoing | None:
        raise NotImplementedError

    async def events(self) -> AsyncIterator[Outgoing]:
        """``connected``, then durable events in seq order, with heartbeats when due."""
        async for batch in self.batches():
            for item in batch:
                yield item

    async def batches(self) -> AsyncIterator[list[Outgoing]]:
        """:meth:`events`, a batch at a time: all that is ready, so that a writer can send a
        burst in one write (one system call instead of one per event)."""
        loop = asyncio.get_running_loop()
        wheel = self._expiry_wheel()
        interval = self.heartbeat_interval
        yield [self.connected]
        next_beat = loop.time() + interval
        # One timer entry per heartbeat, not one armed and cancelled around every wait: that
        # timer (and the heap work behind it) was a visible share of each push
        # (docs/benchmarks.md). The entry is the hub's wheel's (one loop timer for every stream
        # and held poll); it fires at next_beat rounded up to the wheel's resolution, never
        # before, so the woken loop always finds the beat due.
        timer = wheel.call_at(next_beat, self.wakeup.set)
        try:
            while True:
                # Clear before taking: a publish after the take sets it again, so none is missed.
                self.wakeup.clear()
                try:
                    batch = await self._take()
                    now = loop.time()
                    if batch is not None and now >= next_beat:
                        beat = await self._heartbeat()
                        if beat is None:
                            batch = None
                        else:
                            batch.append(beat)
                            next_beat += interval
                            if next_beat <= now:  # fell behind (a blocked writer): no burst
                                next_beat = now + interval
                            timer.cancel()
                            timer = wheel.call_at(next_beat, self.wakeup.set)
                except BackendUnavailable:
                    # ended is a slot of the store's waiter class, which every stream also is
                    self.ended = self.ended or EndReason.BACKEND_UNAVAILABLE  # type: ignore[misc]
                    batch = None
                if batch is None:
                    last = self._last_words()
                    if last is not None:
                        yield [last]
                    return
                if batch:
                    yield batch
                    continue
                await self.wakeup.wait()
        finally:
            timer.cancel()

    def _last_words(self) -> Outgoing | None:
        """The ``error`` event a stream ends with when the client must be told why: the store
        became unreachable (``backend_unavailable``), or the connection is gone from it
        (``unknown_connection``: its reconnection is told ``resume_failed``). A stream that was
        superseded, cut or shut down ends without one."""
        if self.ended is EndReason.BACKEND_UNAVAILABLE:
            error: Exception = BackendUnavailable()
            code = ErrorCode.BACKEND_UNAVAILABLE
        elif self.ended is EndReason.EXPIRED:
            error, code = UnknownConnection(), ErrorCode.UNKNOWN_CONNECTION
        else:
            return None
        event = events.error_event(self._connection_id(), code, str(error))
        return Outgoing(events.encode(event))
