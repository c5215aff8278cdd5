"""Waking a waiter (a held poll, a stream) on the server's event loop, from any thread.

:class:`Wakeup` is the flag a waiter sleeps on: ``asyncio.Event``'s semantics for one waiting
task, without the deque an ``asyncio.Event`` allocates for its waiters (~600 bytes a connection).
It is not thread-safe, no more than ``asyncio.Event``: a notebook thread that publishes must hand
the ``set()`` to the loop. :class:`Wakeups` does that once per burst, however many waiters it
wakes, so a broadcast to a thousand streams costs one loop wake-up, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Generic, Protocol, TypeVar

__all__ = ["Flag", "Inbox", "Wakeable", "Wakeup", "Wakeups"]

T = TypeVar("T")


class Wakeup:
    """A flag one task waits on, on one event loop: ``asyncio.Event`` for a single waiter.

    :meth:`set` before :meth:`wait` makes the wait return at once (without yielding to the
    loop, as ``asyncio.Event.wait`` does); :meth:`clear` lowers the flag, and the loops that own
    one clear it *before* they look for work, so that a ``set()`` during the look is not lost
    (stream_loop.py, held_polls.py). A future exists only while a task waits: an idle
    connection's wake-up is this object and its two slots. One waiter at a time (each waiter's
    wake-up belongs to the one coroutine that drives it); a second concurrent :meth:`wait` is a
    bug and raises ``RuntimeError``.
    """

    __slots__ = ("_flag", "_future")

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        """Whether the flag is up."""
        return self._flag

    def set(self) -> None:
        """Raise the flag and wake the waiting task, if any (on the loop's thread)."""
        if self._flag:
            return
        self._flag = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def clear(self) -> None:
        """Lower the flag: the next :meth:`wait` sleeps until :meth:`set`."""
        self._flag = False

    async def wait(self) -> None:
        """Return once the flag is up (at once if it already is)."""
        if self._flag:
            return
        if self._future is not None:
            raise RuntimeError("a Wakeup has one waiter at a time")
        future = asyncio.get_running_loop().create_future()
        self._future = future
        try:
            await future
        finally:
            self._future = None


class Flag:
    """``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``) for any number of waiters,
    whose list of them exists only while someone waits (an ``asyncio.Event`` allocates a deque,
    ~0.7 KiB): uvicorn's flow-control and request events, and a WebSocket's "writable" flag
    (socket_guard.py, ws_protocol.py)."""

    __slots__ = ("_up", "_waiters")

    def __init__(self) -> None:
        self._up = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._up

    def set(self) -> None:
        self._up = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._up = False

    async def wait(self) -> None:
        while not self._up:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class Inbox(Generic[T]):
    """A queue for one reader, on one event loop: ``asyncio.Queue``'s ``put_nowait``, ``get``,
    ``qsize`` and ``empty`` without its three deques and an event (~2.4–3.3 KB less a
    connection by tracemalloc): a list and a :class:`Wakeup`. What a WebTransport session's
    stream brought (h3_endpoint.py), and uvicorn's events for a WebSocket's app
    (ws_protocol.py). Unbounded, like the queue it replaces: the caller bounds what is put."""

    __slots__ = ("_head", "_items", "_ready")

    def __init__(self) -> None:
        self._items: list[T | None] = []
        self._head = 0  # the next item to get; taken items are dropped in halves or at empty
        self._ready = Wakeup()

    def put_nowait(self, item: T) -> None:
        """Add ``item`` and wake the reader."""
        self._items.append(item)
        self._ready.set()

    def qsize(self) -> int:
        """Items not taken yet."""
        return len(self._items) - self._head

    def empty(self) -> bool:
        """Whether nothing waits to be taken."""
        return self._head == len(self._items)

    async def get(self) -> T:
        """The next item, waiting for one (at once, without yielding, when one is there)."""
        while self._head == len(self._items):
            self._ready.clear()  # cleared only while empty: a put after this sets it again
            await self._ready.wait()
        items, head = self._items, self._head + 1
        item, items[head - 1] = items[head - 1], None
        if head == len(items):
            items.clear()
            head = 0
        elif head >= 64 and 2 * head >= len(items):  # a reader never quite caught up:
            del items[:head]  # drop the taken half, amortized O(1) a get
            head = 0
        self._head = head
        return item  # type: ignore[return-value]  # a slot is None only once taken


class Wakeable(Protocol):
    """Anything with a ``wakeup``: a held poll or a stream."""

    wakeup: Wakeup


class Wakeups:
    """Sets waiters' ``wakeup`` flags on the loop given to :meth:`bind`.

    :meth:`notify` is called with the hub's lock held; ``lock`` is that lock, taken again when the
    loop runs the batch.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: set[Wakeable] = set()
        self._scheduled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake-ups from now on go to ``loop``; call it on that loop's thread."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def notify(self, waiter: Wakeable) -> None:
        """Wake ``waiter``: at once on the loop's own thread, else in the next batch."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            waiter.wakeup.set()
            return
        self._pending.add(waiter)
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            waiters, self._pending = self._pending, set()
            self._scheduled = False
        for waiter in waiters:
            waiter.wakeup.set()
