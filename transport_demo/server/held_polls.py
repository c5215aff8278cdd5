"""Long polling: holding a poll, once for both stores.

A held poll is a waiter attached to its connection until events arrive, its hold expires, a newer
poll or send supersedes it, or the server shuts down. :func:`hold_poll` is that loop; a store
supplies its four steps (:class:`PollSteps`: the memory hub's are
:class:`~transport_demo.server.hub.MemoryPollSteps`, the
Redis hub's its scripts, :class:`~transport_demo.server.redis_waiters.RedisPollSteps`). The
delivery rules (what to answer, what counts as acknowledged) are the connection core's (or the
scripts').
"""

from __future__ import annotations

import random
from typing import Protocol, TypeVar

from . import events
from .errors import BackendUnavailable
from .expiry_wheel import ExpiryWheel
from .protocol import EndReason
from .waiters import Waiting

__all__ = ["PollSteps", "hold_for", "hold_poll", "with_queued_seq"]

W = TypeVar("W", bound=Waiting)


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
    wheel: ExpiryWheel,
) -> str:
    """Answer a long poll: events after the resume point, at once or when they come.

    Returns the encoded answer: ``message`` with ``messages``, or ``timeout`` when nothing came
    within ``hold`` seconds or the poll was ended (``"reason": "superseded"``, ``"cut"``,
    ``"shutdown"``). With ``last_seq`` the events up to it are acknowledged and later ones are sent
    again until acknowledged; without it, events count as delivered once sent.

    The hold is an entry of ``wheel`` (one timer for every held poll of the loop): when it runs
    out it wakes the waiter, which sees the entry ``fired`` and stops. A store step in flight
    then (a Redis script in ``poll_again``) is not cancelled: it completes, and its answer, if
    any, is sent; the hold may thus end up to the wheel's resolution, or one step, late.
    """
    answer, waiter = await steps.poll_begin(connection_id, last_seq, hold)
    if answer is not None:
        return answer
    if waiter is None:  # not held, and nothing to send
        return events.poll_timeout(
            connection_id, EndReason.HOLD_EXPIRED, poll_timeout=poll_timeout, hold=hold
        )
    expiry = wheel.call_later(hold, waiter.wakeup.set)
    try:
        while waiter.ended is None:
            await waiter.wakeup.wait()
            # Cleared before the look: a wake-up after it sets it again, none is missed.
            waiter.wakeup.clear()
            if waiter.ended is not None or expiry.fired:
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
        expiry.cancel()
        await steps.poll_end(waiter)


def with_queued_seq(answer: str, seq: int) -> str:
    """A poll's answer with ``queued_seq``: the seq a text sent with that request got."""
    return answer[:-1] + f',"queued_seq":{seq}}}'


def hold_for(poll_timeout: float, jitter: float) -> float:
    """How long to hold one poll: ``poll_timeout``, or with ``jitter`` a uniform draw between
    ``(1 - jitter) x poll_timeout`` and ``poll_timeout``. Polls that start together (a class
    pressing Start, every client reconnecting after a restart) then expire spread over a window
    instead of all at once, and each round spreads them further."""
    if jitter <= 0:
        return poll_timeout
    return poll_timeout * (1 - jitter * random.random())
