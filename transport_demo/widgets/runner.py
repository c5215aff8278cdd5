"""One background event loop for the widget clients, in a daemon thread.

Why not the kernel's own loop: a client must keep running while the kernel sits idle (a student
presses Start and then only watches), whatever the ipykernel version does with tasks between cells
(some versions stop running them while idle), and the widgets must work the same from a plain
script or test. Widget traits may be set from this thread; nothing here prints (output from a
thread lands in the wrong cell).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The widgets' loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new_loop = asyncio.new_event_loop()
            threading.Thread(
                target=new_loop.run_forever, name="transport-demo-widgets", daemon=True
            ).start()
            _loop = new_loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run ``coro`` on the widgets' loop and wait for its result (from any other thread)."""
    return asyncio.run_coroutine_threadsafe(coro, loop()).result(timeout)
