"""The garbage collector's policy for a server holding thousands of connections.

CPython's cyclic collector walks every tracked object in a full (generation 2) collection. With
10,000 connections that is millions of objects, and docs/benchmarks.md measured single pauses of
~2.7 s: every heartbeat and poll answer of the whole server is that late. ``gc.freeze()`` moves what
exists into a permanent generation that collections skip. Done once the server is up and again
every two seconds (after a young collection, so fresh garbage is not frozen with it: both cost
next to nothing), full collections only walk what is newer than the last freeze. Once a minute was
too rare: 10,000 connections opened in the minute after a freeze still cost a 1.2 s full pause.

The trade-off: a frozen object is still freed by reference counting the moment nobody refers to it,
but a reference *cycle* among frozen objects is never collected (until ``gc.unfreeze()``). The
server's own per-connection state has no such cycles by design; two that others make are broken
when a connection ends: CPython 3.11's socket transport refers to itself
(:func:`.socket_guard.release_transport`) and so does aioquic's connection
(``H3ServerProtocol._release``). A process that runs for days with a lot of churn may still leak a
little (tests/test_load.py bounds what connect/disconnect cycles leave, the freeze on). The
command-line server owns its process and turns this on
(``--no-gc-freeze`` turns it off); inside a notebook kernel it is an opt-in (``gc_freeze=True``),
since the freeze applies to the kernel's own objects too.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["FREEZE_INTERVAL", "Freezer", "freeze_now"]

FREEZE_INTERVAL = 2.0
"""Seconds between freezes once the server runs."""


def freeze_now() -> None:
    """Collect the young generations, then freeze everything tracked. Both take microseconds.

    (Never ``gc.get_freeze_count()`` here: it walks the whole permanent generation, ~20 ms per
    million objects, and with 10,000 connections that was a stall of the server every freeze.)
    """
    gc.collect(1)
    gc.freeze()


class Freezer:
    """Runs :func:`freeze_now` now and every ``interval`` seconds (``await freezer.run()``, until
    cancelled); ``count`` says how many times, for /stats."""

    def __init__(self, interval: float = FREEZE_INTERVAL) -> None:
        self.interval = interval
        self.count = 0

    async def run(self) -> None:
        while True:
            freeze_now()
            self.count += 1
            await asyncio.sleep(self.interval)
