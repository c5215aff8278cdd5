"""Waking a waiter (a held poll, a stream) on the server's event loop, from any thread.

``asyncio.Event`` is not thread-safe: a notebook thread that publishes must hand the ``set()`` to
the loop. :class:`Wakeups` does that once per burst, however many waiters it wakes, so a broadcast
to a thousand streams costs one loop wake-up, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Protocol

__all__ = ["Wakeable", "Wakeups"]


class Wakeable(Protocol):
    """Anything with a ``wakeup`` event: a held poll or a stream."""

    wakeup: asyncio.Event


class Wakeups:
    """Sets waiters' ``wakeup`` events on the loop given to :meth:`bind`.

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
