"""Long polling's side of the hub: opening a connection, holding a poll, a send that is a poll.

A held poll is a :class:`~transport_demo.stream.Waiter` attached to its connection until events
arrive, its hold expires, a newer poll or send supersedes it, or the server shuts down. The
delivery rules (what to answer, what counts as acknowledged) are the connection core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import TYPE_CHECKING

from . import events
from .connection import Connection
from .protocol import EndReason, Transport
from .waiters import Waiter

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["connect", "hold_for", "poll", "send_and_poll"]


def connect(hub: Registry, address: str | None = None) -> str:
    """Create a long-polling connection for a client at ``address``; return its encoded
    ``connected`` event."""
    with hub.lock:
        conn = hub.create(Transport.LONG_POLLING, address)
    settings = hub.settings
    return events.poll_connected(
        conn.id, poll_timeout=settings.poll_timeout, expires_after=settings.effective_poll_expiry
    )


async def poll(
    hub: Registry, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
) -> str:
    """Answer a long poll: events after the resume point, at once or when they come.

    Returns the encoded answer: ``message`` with ``messages``, or ``timeout`` when nothing came
    within ``hold`` seconds (default ``poll_timeout``) or a newer poll took over (``"reason":
    "superseded"``). With ``last_seq`` the events up to it are acknowledged and later ones are sent
    again until acknowledged; without it, events count as delivered once sent.
    """
    if hold is None:
        hold = hold_for(hub.settings.poll_timeout, hub.settings.poll_hold_jitter)
    with hub.lock:
        hub.refuse_if_closing()
        conn = hub.find(connection_id, Transport.LONG_POLLING)
        conn.last_seen = hub.now()
        answer = _answer(hub, conn, last_seq)
        # At most one held poll: an older one ends, empty, even when this one answers at once.
        waiter = Waiter(conn)
        hub.attach(conn, waiter)
        if answer is not None or hold <= 0:
            hub.release(waiter)
            return answer or _timeout(hub, conn, EndReason.HOLD_EXPIRED, hold)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold):
                while True:
                    await waiter.wakeup.wait()
                    with hub.lock:
                        waiter.wakeup.clear()
                        if waiter.ended is not None:
                            return _timeout(hub, conn, waiter.ended, hold)
                        answer = _answer(hub, conn, last_seq)
                        if answer is not None:
                            return answer
        with hub.lock:
            return _answer(hub, conn, last_seq) or _timeout(
                hub, conn, waiter.ended or EndReason.HOLD_EXPIRED, hold
            )
    finally:
        with hub.lock:
            hub.release(waiter)
            conn.last_seen = hub.now()


async def send_and_poll(hub: Registry, connection_id: str, text: str, last_seq: int | None) -> str:
    """A client sent text on long polling: queue it, then answer at once like a poll.

    This request is the connection's poll now: a held poll ends (``superseded``, empty) and this
    answer carries the new message, plus ``queued_seq`` saying which seq it got.
    """
    seq = hub.receive(connection_id, text, Transport.LONG_POLLING)
    answer = await poll(hub, connection_id, last_seq, hold=0)
    return answer[:-1] + f',"queued_seq":{seq}}}'


def _answer(hub: Registry, conn: Connection, last_seq: int | None) -> str | None:
    # Acknowledging the same last_seq again (each time a held poll wakes) changes nothing.
    batch = conn.poll_batch(last_seq)
    if not batch:
        return None
    hub.count("events_sent", len(batch))
    return events.poll_batch(conn.id, batch)


def hold_for(poll_timeout: float, jitter: float) -> float:
    """How long to hold one poll: ``poll_timeout``, or with ``jitter`` a uniform draw between
    ``(1 - jitter) x poll_timeout`` and ``poll_timeout``. Polls that start together (a class
    pressing Start, every client reconnecting after a restart) then expire spread over a window
    instead of all at once, and each round spreads them further."""
    if jitter <= 0:
        return poll_timeout
    return poll_timeout * (1 - jitter * random.random())


def _timeout(hub: Registry, conn: Connection, reason: EndReason, hold: float) -> str:
    return events.poll_timeout(
        conn.id, reason.value, poll_timeout=hub.settings.poll_timeout, hold=hold
    )
