"""The garbage collector's policy for a server holding thousands of connections.

CPython's cyclic collector walks every tracked object in a full (generation 2) collection. With
10,000 connections that is millions of objects, and docs/benchmarks.md measured single pauses of
~2.7 s: every heartbeat and poll answer of the whole server is that late. ``gc.freeze()`` moves what
exists into a permanent generation that collections skip. Done once the server is up and again
every minute (after a young collection, so fresh garbage is not frozen with it), full collections
only walk what is newer than the last freeze.

The trade-off: a frozen object is still freed by reference counting the moment nobody refers to it,
but a reference *cycle* among frozen objects is never collected (until ``gc.unfreeze()``). The
server's per-connection state has no such cycles by design; a process that runs for days with a
lot of churn may still leak a little. The command-line server owns its process and turns this on
(``--no-gc-freeze`` turns it off); inside a notebook kernel it is an opt-in (``gc_freeze=True``),
since the freeze applies to the kernel's own objects too.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["FREEZE_INTERVAL", "freeze_now", "freeze_periodically"]

FREEZE_INTERVAL = 60.0
"""Seconds between freezes once the server runs."""


def freeze_now() -> int:
    """Collect the young generations, then freeze everything tracked; return how many objects
    the permanent generation holds now."""
    gc.collect(1)
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_periodically(interval: float = FREEZE_INTERVAL) -> None:
    """Freeze now and then every ``interval`` seconds, until cancelled."""
    while True:
        freeze_now()
        await asyncio.sleep(interval)
