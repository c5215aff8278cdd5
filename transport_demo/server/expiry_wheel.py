"""One loop timer for many deadlines: the held polls' holds and the streams' heartbeats.

Ten thousand connections each with a ``loop.call_at`` of their own put ten thousand
``TimerHandle`` objects in the event loop's heap, and every arm and cancel is heap work on the
hot path. Here deadlines are rounded **up** to :data:`RESOLUTION` and grouped in buckets (one per
rounded time); :class:`ExpiryWheel` arms a single ``loop.call_at``, for the earliest occupied
bucket, and re-arms it when that bucket has fired. Most deadlines are added *later* than the
earliest one (a hold or a beat interval from now), so adding one is a dict look-up and a list
append, and the loop's heap holds one handle whatever the number of connections. Arming one handle
per occupied bucket instead would bring back a heap entry per bucket for no gain: the wheel's own
heap of bucket times already orders them.

The bookkeeping is sans-I/O (:class:`Buckets`: deadlines in, due callbacks out, for a given
``now``); :class:`ExpiryWheel` drives it with the loop's clock and timer. Everything happens on
one event loop, the server's: entries are added and cancelled from coroutines running there
(the held poll, the stream loop), and callbacks run there; nothing here is thread-safe, and the
notebook thread never touches a wheel (it wakes waiters through
:class:`~transport_demo.server.wakeups.Wakeups`).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable

__all__ = ["RESOLUTION", "Buckets", "Entry", "ExpiryWheel"]

RESOLUTION = 0.005
"""Seconds a deadline may be rounded up by (5 ms). The target is heartbeat and answer lateness
p99 < 100 ms at 10,000 connections (issue 26): rounding adds at most a twentieth of that. A bucket's
entries fire together, so their tasks then run one after another: with 10,000 streams opened in
one burst (~0.3 s), 10 ms buckets measured a median beat lateness of 9-10 ms, 5 ms buckets 5 ms,
the same CPU (in-process, no sockets). Coalescing still holds: 10,000 beats every 15 s (~670 a
second) fire as at most 200 timer callbacks a second, and the event loop's selector waits in
whole milliseconds, so finer buckets would fire more often for little."""


class Entry:
    """One deadline in a wheel: :meth:`cancel` it, or read :attr:`fired` after it ran.

    ``fired`` is ``True`` once its callback has run. A cancelled entry drops its callback at once
    (so whatever it would wake can be freed) and stays in its bucket, inert, until the bucket's
    time: cancelling is O(1), with no search.
    """

    __slots__ = ("_callback", "fired")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback
        self.fired = False

    def cancel(self) -> None:
        """Do not run the callback (no effect once it has run)."""
        self._callback = None

    @property
    def cancelled(self) -> bool:
        """Cancelled before it fired."""
        return self._callback is None and not self.fired

    def _take(self) -> Callable[[], None] | None:
        callback, self._callback = self._callback, None
        if callback is not None:
            self.fired = True
        return callback


class Buckets:
    """The wheel's bookkeeping without a loop: deadlines rounded up to ``resolution`` seconds,
    one bucket per rounded time, bucket times in a heap."""

    __slots__ = ("_buckets", "_keys", "resolution")

    def __init__(self, resolution: float = RESOLUTION) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self._buckets: dict[int, list[Entry]] = {}
        self._keys: list[int] = []  # a heap of the occupied buckets' keys

    def key(self, deadline: float) -> int:
        """The bucket of ``deadline``: the smallest ``k`` with ``k x resolution >= deadline``
        (checked after the division, whose rounding could otherwise put it one bucket early:
        a heartbeat woken before its time would not be sent, and nothing would wake it again)."""
        k = math.ceil(deadline / self.resolution)
        if k * self.resolution < deadline:
            k += 1
        return k

    def time_of(self, key: int) -> float:
        """When the bucket ``key`` is due."""
        return key * self.resolution

    def add(self, deadline: float, callback: Callable[[], None]) -> tuple[Entry, bool]:
        """Add a deadline; returns its entry and whether it made a new earliest bucket (the
        caller's timer must then be armed earlier)."""
        entry = Entry(callback)
        k = self.key(deadline)
        bucket = self._buckets.get(k)
        if bucket is not None:
            bucket.append(entry)
            return entry, False
        self._buckets[k] = [entry]
        earliest = not self._keys or k < self._keys[0]
        heapq.heappush(self._keys, k)
        return entry, earliest

    def next_due(self) -> float | None:
        """When the earliest occupied bucket is due (``None``: nothing is waiting)."""
        return self.time_of(self._keys[0]) if self._keys else None

    def pop_due(self, now: float) -> list[Callable[[], None]]:
        """Take every bucket due at ``now``, in time order, and return the callbacks of its
        entries that were not cancelled (each entry is marked ``fired``)."""
        due: list[Callable[[], None]] = []
        keys, buckets = self._keys, self._buckets
        while keys and self.time_of(keys[0]) <= now:
            for entry in buckets.pop(heapq.heappop(keys)):
                callback = entry._take()
                if callback is not None:
                    due.append(callback)
        return due

    def pending(self) -> int:
        """Entries neither fired nor cancelled (counted: for tests and ``/stats``-like looks)."""
        return sum(
            1 for bucket in self._buckets.values() for e in bucket if e._callback is not None
        )

    def clear(self) -> None:
        """Forget every entry (they will never fire)."""
        for bucket in self._buckets.values():
            for entry in bucket:
                entry.cancel()
        self._buckets.clear()
        self._keys.clear()


class ExpiryWheel:
    """:class:`Buckets` on an event loop: :meth:`call_at` is ``loop.call_at`` for deadlines
    that may run up to ``resolution`` late, with one loop timer for all of them.

    Make it, and call every method, on ``loop``'s thread (see the module docstring).
    """

    __slots__ = ("_armed", "_buckets", "_handle", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = RESOLUTION) -> None:
        self.loop = loop
        self._buckets = Buckets(resolution)
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None  # when the handle is due

    @property
    def resolution(self) -> float:
        """Seconds a deadline may be rounded up by."""
        return self._buckets.resolution

    def call_at(self, when: float, callback: Callable[[], None]) -> Entry:
        """Run ``callback`` at loop time ``when`` rounded up to the resolution (never before
        ``when``); returns the entry to cancel."""
        entry, earliest = self._buckets.add(when, callback)
        if earliest:
            self._arm()
        return entry

    def call_later(self, delay: float, callback: Callable[[], None]) -> Entry:
        """:meth:`call_at` ``delay`` seconds from now."""
        return self.call_at(self.loop.time() + delay, callback)

    def pending(self) -> int:
        """Entries waiting to fire."""
        return self._buckets.pending()

    def close(self) -> None:
        """Disarm the timer and forget every entry."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._armed = None
        self._buckets.clear()

    def _arm(self) -> None:
        due = self._buckets.next_due()
        if due == self._armed:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed = due
        self._handle = None if due is None else self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed = None
        # The loop may run a timer a clock tick before its time; a bucket not yet due then stays
        # and the timer is armed again for it, so no entry ever runs before its deadline.
        for callback in self._buckets.pop_due(self.loop.time()):
            try:
                callback()
            except Exception as exc:  # one failing callback must not keep the others from running
                self.loop.call_exception_handler(
                    {"message": "expiry wheel callback failed", "exception": exc}
                )
        self._arm()
