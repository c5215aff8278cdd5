"""The Redis hub's waiters: a held poll's steps and an attached stream, as script calls.

A waiter lives in the process that holds its socket; Redis records which process (``o``) and
which waiter (``k``, :attr:`RedisWaiter.token`) is attached. Only the waiter holding the token may
take events, so a stale socket on another process can never take (and lose) what the new one must
send. The loops that drive them are the delivery layer's
(:class:`~transport_demo.server.stream_loop.StreamLoop`,
:func:`~transport_demo.server.held_polls.hold_poll`); here are their store operations.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from . import events
from .connection import MAX_BATCH_BYTES
from .errors import UnknownConnection
from .expiry_wheel import ExpiryWheel
from .protocol import EndReason, Transport
from .redis_calls import Arg
from .redis_store import MAX_BATCH, RedisStore
from .settings import Settings
from .stream_loop import StreamLoop
from .waiters import MAX_UNSENT_ERRORS, Outgoing, Waiting

__all__ = ["RedisPollSteps", "RedisStream", "RedisWaiter", "WaiterHost"]


class RedisWaiter(Waiting):
    """A held poll or an attached stream in this process; ``token`` names it in Redis."""

    __slots__ = ("cleared", "connection_id", "pending", "token")

    def __init__(self, connection_id: str, transport: Transport = Transport.LONG_POLLING) -> None:
        super().__init__(transport)
        self.connection_id = connection_id
        self.token = secrets.token_hex(8)
        # Something may be in Redis for this waiter: set by wake-ups, cleared before each take.
        # A stream's heartbeat timer wakes it without this, so a beat costs one script, not two.
        self.pending = True
        # A held poll: a script has already detached it in Redis (it answered, or another took
        # over), so ending it needs no DETACH.
        self.cleared = False

    def wake(self) -> None:
        """There may be something to take."""
        self.pending = True
        self.wakeup.set()


class WaiterHost(Protocol):
    """What the waiters use of the Redis hub (:class:`~transport_demo.server.redis_hub.RedisHub`):
    its store and settings, its counters, its timer wheel, and its book of this process's
    waiters."""

    settings: Settings
    store: RedisStore
    process_id: str

    def count(self, counter: str, n: int = 1) -> None: ...

    def check_ready(self) -> None: ...

    def expiry_wheel(self) -> ExpiryWheel: ...

    def attached_ttl_ms(self) -> float: ...

    async def areceive(self, connection_id: str, text: str, transport: Transport) -> int: ...

    def adopt(self, waiter: RedisWaiter) -> None: ...

    def forget(self, waiter: RedisWaiter) -> None: ...

    async def adetach(self, waiter: RedisWaiter, ttl_seconds: float) -> None: ...

    def supersede_here(self, owner: str | None, token: str | None, connection_id: str) -> None: ...

    async def supersede(self, owner: str | None, token: str | None, mine: RedisWaiter) -> None: ...


class RedisStream(StreamLoop, RedisWaiter):
    """An SSE or WebSocket stream attached to a connection kept in Redis (the same interface as
    :class:`~transport_demo.server.stream.Stream`)."""

    __slots__ = ("connected", "hub", "outbox")

    def __init__(self, hub: WaiterHost, connection_id: str, transport: Transport) -> None:
        super().__init__(connection_id, transport)
        self.hub = hub
        self.connected = Outgoing("")
        self.outbox: list[Outgoing] = []

    @property
    def heartbeat_interval(self) -> float:
        return self.hub.settings.heartbeat_interval

    def _connection_id(self) -> str:
        return self.connection_id

    def _expiry_wheel(self) -> ExpiryWheel:
        return self.hub.expiry_wheel()

    async def areceive(self, text: str) -> int:
        """The client sent ``text`` on this stream: store its echo, return the seq."""
        return await self.hub.areceive(self.connection_id, text, self.transport)

    def send_error(self, code: str, detail: str) -> bool:
        """Queue an ``error`` event for this stream only; ``False`` when too many wait."""
        if len(self.outbox) >= MAX_UNSENT_ERRORS:
            return False
        event = events.error_event(self.connection_id, code, detail)
        self.outbox.append(Outgoing(events.encode(event)))
        self.wakeup.set()
        return True

    async def aclose(self) -> None:
        """The socket is gone: detach in Redis (the connection waits out its resume grace)."""
        if self.ended is None:
            self.ended = EndReason.CLOSED
        await self.hub.adetach(self, self.hub.settings.resume_grace)

    def _gone(self, answer: int) -> None:
        """A script said this stream may not go on: another took over (-4), or the connection is
        no longer in Redis (-1: it expired, or Redis lost it). The client is told which: a
        superseded stream ends quietly (WebSocket 4000: do not reconnect); a lost connection ends
        with an ``unknown_connection`` error (WebSocket 1001), and its reconnection is told
        ``resume_failed``, never handed another history."""
        self.stop(EndReason.SUPERSEDED if answer == -4 else EndReason.EXPIRED)

    def _take_outbox(self) -> list[Outgoing]:
        out, self.outbox = self.outbox, []
        return out

    async def _take(self) -> list[Outgoing] | None:
        if self.ended is not None:
            return None
        if not self.pending:  # woken by the heartbeat timer or an error only: nothing in Redis
            return self._take_outbox()
        self.pending = False  # cleared first: a wake-up during the script sets it again
        out = self._take_outbox()
        hub = self.hub
        reply = await hub.store.call(
            "TAKE",
            self.connection_id,
            self.token,
            MAX_BATCH,
            hub.settings.replay_window,
            MAX_BATCH_BYTES,
        )
        n = int(reply[0])
        if n < 0:
            self._gone(n)
            return None
        if n:
            hub.count("events_sent", n)
            prefix = self.connection_id + ":"
            out.extend(
                Outgoing(str(reply[i + 1]), prefix + str(reply[i])) for i in range(1, 2 * n, 2)
            )
            if n == MAX_BATCH or sum(len(item.data) for item in out) >= MAX_BATCH_BYTES // 4:
                # A full batch (by count, or maybe by bytes: the script stops at MAX_BATCH_BYTES
                # of UTF-8, which is at least a quarter as many characters): more may be waiting,
                # so take again on the next turn (an empty take costs one script).
                self.wake()
        return out

    async def _heartbeat(self) -> Outgoing | None:
        hub = self.hub
        reply = await hub.store.call("BEAT", self.connection_id, self.token, hub.attached_ttl_ms())
        count = int(reply[0])
        if count < 0:
            self._gone(count)
            return None
        hub.count("heartbeats_sent")
        return Outgoing(events.heartbeat_event(self.connection_id, count))


class RedisPollSteps:
    """The held poll's steps (:class:`~transport_demo.server.held_polls.PollSteps`) as POLL
    scripts: ``begin`` acknowledges, answers or attaches; ``again`` looks after a wake-up;
    ``final`` is the last look when the hold runs out. Only the waiter holding the token may
    take."""

    __slots__ = ("hold", "hub", "last_seq")

    def __init__(self, hub: WaiterHost, last_seq: int | None) -> None:
        self.hub = hub
        self.last_seq: Arg = "" if last_seq is None else last_seq
        self.hold = 0.0

    async def _step(self, waiter: RedisWaiter, mode: str) -> list[Any]:
        hub = self.hub
        idle_ms = hub.settings.effective_poll_expiry * 1000
        reply = await hub.store.call(
            "POLL",
            waiter.connection_id,
            self.last_seq,
            hub.process_id,
            waiter.token,
            mode,
            "1" if self.hold > 0 else "0",
            self.hold * 1000 + idle_ms,
            idle_ms,
            MAX_BATCH,
            hub.settings.replay_window,
            MAX_BATCH_BYTES,
            Transport.LONG_POLLING.value,
        )
        reply[0] = int(reply[0])
        return reply

    def _answer(self, connection_id: str, reply: list[Any]) -> str:
        n = reply[0]
        self.hub.count("events_sent", n)
        return events.poll_batch(connection_id, [str(reply[i]) for i in range(4, 4 + 2 * n, 2)])

    async def poll_begin(
        self, connection_id: str, last_seq: int | None, hold: float
    ) -> tuple[str | None, RedisWaiter | None]:
        hub = self.hub
        hub.check_ready()
        self.hold = hold
        waiter = RedisWaiter(connection_id)
        reply = await self._step(waiter, "begin")
        if reply[0] < 0:
            raise UnknownConnection()
        hub.supersede_here(reply[1], reply[2], connection_id)
        if reply[0] > 0 or hold <= 0:
            await hub.supersede(reply[1], reply[2], waiter)
            return (self._answer(connection_id, reply) if reply[0] > 0 else None), None
        hub.adopt(waiter)
        await hub.supersede(reply[1], reply[2], waiter)
        return None, waiter

    async def poll_again(self, waiter: RedisWaiter) -> str | None:
        reply = await self._step(waiter, "again")
        if reply[0] == -4:  # another poll took over (the script detached this one)
            waiter.cleared = True
            waiter.stop(EndReason.SUPERSEDED)
            return None
        if reply[0] < 0:
            waiter.cleared = True
            raise UnknownConnection()
        if reply[0] > 0:
            waiter.cleared = True
            return self._answer(waiter.connection_id, reply)
        return None

    async def poll_final(self, waiter: RedisWaiter) -> str | None:
        reply = await self._step(waiter, "final")
        waiter.cleared = True
        return self._answer(waiter.connection_id, reply) if reply[0] > 0 else None

    async def poll_end(self, waiter: RedisWaiter) -> None:
        hub = self.hub
        if waiter.cleared:
            hub.forget(waiter)
        else:  # superseded, shut down, cut: leave Redis saying nobody waits here
            await hub.adetach(waiter, hub.settings.effective_poll_expiry)
