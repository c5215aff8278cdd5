"""Waiting on a condition instead of sleeping: a test goes on as soon as the state it needs holds,
and fails with a clear message when it never does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Return as soon as ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.01)


async def until_async(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """:func:`until` for a test on the event loop: the loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        await asyncio.sleep(0.005)
