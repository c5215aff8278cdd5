"""Long polling: holding a poll (once, for both stores), opening a connection and a send that is
a poll (the memory hub's).

A held poll is a waiter attached to its connection until events arrive, its hold expires, a newer
poll or send supersedes it, or the server shuts down. :func:`hold_poll` is that loop; a store
supplies its four steps (:class:`PollSteps`: the memory hub's are :class:`MemoryPollSteps`, the
Redis hub's its scripts). The delivery rules (what to answer, what counts as acknowledged) are the
connection core's (or the scripts').
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import TYPE_CHECKING, Protocol, TypeVar

from . import events
from .connection import Connection
from .errors import BackendUnavailable
from .protocol import EndReason, Transport
from .waiters import Waiter, Waiting

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "MemoryPollSteps",
    "PollSteps",
    "connect",
    "hold_for",
    "hold_poll",
    "poll",
    "send_and_poll",
    "with_queued_seq",
]

W = TypeVar("W", bound=Waiting)


def connect(hub: Registry, address: str | None = None) -> str:
    """Create a long-polling connection for a client at ``address``; return its encoded
    ``connected`` event."""
    with hub.lock:
        conn = hub.create(Transport.LONG_POLLING, address)
    settings = hub.settings
    return events.poll_connected(
        conn.id, poll_timeout=settings.poll_timeout, expires_after=settings.effective_poll_expiry
    )


class PollSteps(Protocol[W]):
    """What a store supplies for a held poll: four steps, each under its own atomicity (the
    memory hub's lock, one Redis script). The loop that holds is :func:`hold_poll`, once."""

    async def poll_begin(
        self, connection_id: str, last_seq: int | None, hold: float
    ) -> tuple[str | None, W | None]:
        """Acknowledge ``last_seq`` and answer at once if events wait (``(answer, None)``);
        else attach a waiter when ``hold > 0`` (``(None, waiter)``: any older poll of the
        connection ends, ``superseded``) or not (``(None, None)``). Raises
        :class:`~transport_demo.server.errors.UnknownConnection`."""
        ...

    async def poll_again(self, waiter: W) -> str | None:
        """After a wake-up: the answer if events wait now (the waiter is then done), else
        ``None``; may end the waiter (another took over) or raise ``UnknownConnection``."""
        ...

    async def poll_final(self, waiter: W) -> str | None:
        """The hold ran out: a last look, the answer or ``None``."""
        ...

    async def poll_end(self, waiter: W) -> None:
        """The poll is over, however it ended: detach the waiter."""
        ...


async def hold_poll(
    steps: PollSteps[W],
    connection_id: str,
    last_seq: int | None,
    hold: float,
    poll_timeout: float,
) -> str:
    """Answer a long poll: events after the resume point, at once or when they come.

    Returns the encoded answer: ``message`` with ``messages``, or ``timeout`` when nothing came
    within ``hold`` seconds or the poll was ended (``"reason": "superseded"``, ``"cut"``,
    ``"shutdown"``). With ``last_seq`` the events up to it are acknowledged and later ones are sent
    again until acknowledged; without it, events count as delivered once sent.
    """
    answer, waiter = await steps.poll_begin(connection_id, last_seq, hold)
    if answer is not None:
        return answer
    if waiter is None:  # not held, and nothing to send
        return events.poll_timeout(
            connection_id, EndReason.HOLD_EXPIRED, poll_timeout=poll_timeout, hold=hold
        )
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold):
                while waiter.ended is None:
                    await waiter.wakeup.wait()
                    # Cleared before the look: a wake-up after it sets it again, none is missed.
                    waiter.wakeup.clear()
                    if waiter.ended is not None:
                        break
                    answer = await steps.poll_again(waiter)
                    if answer is not None:
                        return answer
        if waiter.ended is EndReason.BACKEND_UNAVAILABLE:
            raise BackendUnavailable()
        if waiter.ended is None:
            answer = await steps.poll_final(waiter)
            if answer is not None:
                return answer
        reason = waiter.ended or EndReason.HOLD_EXPIRED
        return events.poll_timeout(connection_id, reason, poll_timeout=poll_timeout, hold=hold)
    finally:
        await steps.poll_end(waiter)


def with_queued_seq(answer: str, seq: int) -> str:
    """A poll's answer with ``queued_seq``: the seq a text sent with that request got."""
    return answer[:-1] + f',"queued_seq":{seq}}}'


async def poll(
    hub: Registry, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
) -> str:
    """A long poll on the memory hub (:func:`hold_poll` with :class:`MemoryPollSteps`); ``hold``
    defaults to ``poll_timeout`` (with the settings' jitter)."""
    settings = hub.settings
    if hold is None:
        hold = hold_for(settings.poll_timeout, settings.poll_hold_jitter)
    steps = MemoryPollSteps(hub)
    return await hold_poll(steps, connection_id, last_seq, hold, settings.poll_timeout)


async def send_and_poll(hub: Registry, connection_id: str, text: str, last_seq: int | None) -> str:
    """A client sent text on long polling: queue it, then answer at once like a poll.

    This request is the connection's poll now: a held poll ends (``superseded``, empty) and this
    answer carries the new message, plus ``queued_seq`` saying which seq it got.
    """
    seq = hub.receive(connection_id, text, Transport.LONG_POLLING)
    return with_queued_seq(await poll(hub, connection_id, last_seq, hold=0), seq)


class MemoryPollSteps:
    """:class:`PollSteps` on the memory hub: each step under the hub's lock."""

    __slots__ = ("hub", "last_seq")

    def __init__(self, hub: Registry) -> None:
        self.hub = hub
        self.last_seq: int | None = None

    async def poll_begin(
        self, connection_id: str, last_seq: int | None, hold: float
    ) -> tuple[str | None, Waiter | None]:
        hub = self.hub
        self.last_seq = last_seq
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
