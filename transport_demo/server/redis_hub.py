"""The Redis hub: connections, seq counters and replay buffers in Redis, so that any number of
server processes on the same Redis act as one server, with no sticky sessions.

The design and its reasons are in docs/scaling.md. In short:

* **State in Redis, one Lua script per operation** (:mod:`transport_demo.server.redis_scripts`): an
  append increments the connection's seq, adds the encoded event to its stream (entry id =
  seq) and publishes a wake-up, atomically, before ``publish`` returns or a send is answered.
* **Waiters stay in their process.** A held poll or an attached stream lives where its socket
  is; Redis records which process (``o``) and which waiter (``k``, a random token) is attached.
  Only the waiter holding the token may take events, so a stale socket on another process can
  never take (and lose) what the new one must send: that is what keeps delivery exactly once
  across hops.
* **Wake-ups by pub/sub, one channel per process** (``td:w:<process>``): the append script
  publishes to the process the connection is attached on; a newer attach elsewhere tells the old
  process to end its waiter (``superseded``). Pub/sub may lose a message (a dropped link); then
  every waiter of this process ends with ``backend_unavailable`` and its client resumes: nothing
  is lost, because the events themselves are in the stream, not in the message.
* **Redis unavailable:** operations raise :class:`~transport_demo.server.errors.BackendUnavailable`
  (HTTP 503 ``backend_unavailable``); streams send an ``error`` event and end (WebSocket close
  1013, try again later); the listener retries with backoff up to 2 s. Nothing spins.
* **Redis restarted empty:** the connection's keys are gone, so a resume is refused
  (``resume_failed: unknown_connection``, long polling 404): the client is told and starts anew,
  never served another history. A client that has seen a seq the store does not have (a restore
  from an older snapshot) is refused the same way.

The parts: the keys and one call per operation (:mod:`transport_demo.server.redis_store`), the
waiters' store operations (:mod:`transport_demo.server.redis_waiters`), and here the delivery
layer's store interface (:class:`~transport_demo.server.delivery.Delivery`) over them, the
process's pub/sub and beat, and the thread bridge.

Clients of Redis are made in :meth:`RedisHub.start`, on the server's own loop (a redis.asyncio
client belongs to the loop that made it). :meth:`publish` and :meth:`broadcast` may be called from
any other thread (a notebook's): they run on the server's loop and wait for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

from redis.exceptions import RedisError

from .admission import RateLimit
from .connection import check_text, is_connection_id
from .delivery import Delivery
from .errors import (
    BackendUnavailable,
    QueueFull,
    RateLimited,
    ServerShuttingDown,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from .protocol import ConnectionState, EndReason, EventType, Transport
from .redis_store import (
    BEAT_SECONDS,
    CLUSTER_CHANNEL,
    UNAVAILABLE,
    RedisStore,
    process_channel,
)
from .redis_waiters import RedisPollSteps, RedisStream, RedisWaiter
from .settings import Settings

__all__ = ["RedisHub"]

log = logging.getLogger("transport_demo.redis")


class RedisHub(Delivery[RedisWaiter, RedisStream]):
    """Connections kept in Redis; see the module docstring."""

    def __init__(self, settings: Settings, *, process_id: str | None = None) -> None:
        # One loop touches the waiters: the lock the delivery layer takes is a no-op.
        super().__init__(settings, contextlib.nullcontext())
        self.store = RedisStore(settings)
        self.process_id = (
            process_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self._channel = process_channel(self.process_id)
        self._early: dict[str, float] = {}  # wake-ups for waiters not adopted yet (id -> when)
        # Texts per second per connection, counted in this process (a client that spreads its
        # sends over n processes gets up to n times the rate); a bucket is forgotten once it has
        # refilled (RateLimit.prune), which changes no answer: a full bucket is a new one.
        self._rates = RateLimit(settings.max_messages_per_second, settings.message_burst)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False  # the wake-up channel is subscribed
        self._answering = True  # the last beat reached Redis

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the Redis clients on this loop, subscribe, start the process beat. Returns even
        when Redis is down (the server then answers 503 until it comes back)."""
        self._bind_loop()
        self.store.open()
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen_forever(subscribed), name="transport-demo-redis-sub"),
            asyncio.create_task(self._beat_forever(), name="transport-demo-redis-beat"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await subscribed.wait()

    async def _astop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.store.aclose(self.process_id)
        self._subscribed = False

    def check_ready(self) -> None:
        """Refuse new work while closing or while wake-ups can't reach this process."""
        if self._closing:
            raise ServerShuttingDown()
        if not (self._subscribed and self._answering):
            raise BackendUnavailable()

    def attached_ttl_ms(self) -> float:
        """How long a connection with a stream attached lives in Redis without a beat."""
        s = self.settings
        return (3 * s.heartbeat_interval + s.resume_grace + 1) * 1000

    # -- the store interface (transport_demo.server.delivery.Delivery) -----------------------

    async def _create(
        self, transport: Transport, owner: str, token: str, ttl_ms: float, address: str | None
    ) -> str:
        try:
            connection_id = await self.store.create(transport, owner, token, ttl_ms, address)
        except TooManyConnectionsFromAddress:
            self.count("refused_per_address")
            raise
        self.count("connections_opened")
        return connection_id

    async def _acreate_poll(self, address: str | None) -> str:
        idle_ms = self.settings.effective_poll_expiry * 1000
        return await self._create(Transport.LONG_POLLING, "", "", idle_ms, address)

    async def _acreate_stream(self, transport: Transport, address: str | None) -> RedisStream:
        stream = RedisStream(self, "", transport)
        stream.connection_id = await self._create(
            transport, self.process_id, stream.token, self.attached_ttl_ms(), address
        )
        self.adopt(stream)
        return stream

    async def _aresume_stream(
        self, transport: Transport, connection_id: str, last_seq: int | None
    ) -> tuple[RedisStream, int] | None:
        stream = RedisStream(self, connection_id, transport)
        reply = await self.store.call(
            "ATTACH",
            connection_id,
            transport.value,
            self.process_id,
            stream.token,
            "" if last_seq is None else last_seq,
            self.attached_ttl_ms(),
        )
        if int(reply[0]) != 1:
            return None
        self.supersede_here(reply[2], reply[3], connection_id)
        self.adopt(stream)
        await self.supersede(reply[2], reply[3], stream)
        return stream, int(reply[1])

    async def _aappend_echo(
        self, connection_id: str, event_type: EventType, text: str, transport: Transport, wake: bool
    ) -> int:
        if not is_connection_id(connection_id):
            raise UnknownConnection()  # before a rate bucket is keyed by it
        now = time.monotonic()
        self._rates.prune(now)
        try:
            self._rates.take(connection_id, now)
        except RateLimited:
            self.count("rate_limited")
            raise
        try:
            return await self.store.append(connection_id, event_type, text, transport, wake=wake)
        except UnknownConnection:
            self._rates.forget(connection_id)  # a well-formed id of no connection keeps no bucket
            raise

    def _poll_steps(self, last_seq: int | None) -> RedisPollSteps:
        return RedisPollSteps(self, last_seq)

    def wake(self, waiter: RedisWaiter) -> None:
        waiter.wake()

    # -- this process's waiters ---------------------------------------------------------------

    def adopt(self, waiter: RedisWaiter) -> None:
        """``waiter`` is the one attached here now (Redis already says so)."""
        previous = self._waiters.get(waiter.connection_id)
        if previous is not None and previous is not waiter:
            self.end(previous, EndReason.SUPERSEDED)
            waiter.wake()  # a wake-up the previous one took may have been meant for this one
        if self._early.pop(waiter.connection_id, None) is not None:
            waiter.wake()
        self._waiters[waiter.connection_id] = waiter

    def forget(self, waiter: RedisWaiter) -> None:
        """``waiter`` is over and Redis already knows."""
        if self._waiters.get(waiter.connection_id) is waiter:
            del self._waiters[waiter.connection_id]

    async def adetach(self, waiter: RedisWaiter, ttl_seconds: float) -> None:
        """``waiter`` is over: tell Redis nobody waits (the connection lives ``ttl_seconds``)."""
        try:
            if self._waiters.get(waiter.connection_id) is waiter:
                with contextlib.suppress(BackendUnavailable):
                    await asyncio.shield(
                        self.store.call(
                            "DETACH", waiter.connection_id, waiter.token, ttl_seconds * 1000
                        )
                    )
        finally:
            self.forget(waiter)

    def supersede_here(self, owner: str | None, token: str | None, connection_id: str) -> None:
        """End the waiter that was attached, if it is in this process. Called right after the
        script that took over, with no await in between, so no wake-up is missed."""
        if owner == self.process_id:
            waiter = self._waiters.get(connection_id)
            if waiter is not None and waiter.token == token:
                self.end(waiter, EndReason.SUPERSEDED)

    async def supersede(self, owner: str | None, token: str | None, mine: RedisWaiter) -> None:
        """Tell the waiter that was attached on another process that it is over (if the message
        is lost, the old one ends on its next take)."""
        if not owner or not token or token == mine.token or owner == self.process_id:
            return
        await self.store.publish(process_channel(owner), f"e:{mine.connection_id}:{token}")

    # -- pub/sub and the process beat ---------------------------------------------------------

    def _on_message(self, data: str) -> None:
        kind, _, rest = data.partition(":")
        if kind == "w":
            waiter = self._waiters.get(rest)
            if waiter is not None:
                waiter.wake()
            elif len(self._early) < 10_000:
                # The append's wake-up can overtake the reply to the script that attached the
                # waiter (two sockets): keep it for a moment, and adopt hands it over.
                self._early[rest] = time.monotonic()
        elif kind == "c":  # an operator's cut, published by any process (disconnect_all)
            origin, _, transport = rest.partition(":")
            if origin != self.process_id:
                try:
                    chosen = Transport(transport) if transport else None
                except ValueError:  # not ours to act on; the listener must keep listening
                    log.warning("ignored a cut for an unknown transport: %r", transport[:40])
                    return
                self._cut(chosen)
        elif kind == "e":
            connection_id, _, token = rest.partition(":")
            waiter = self._waiters.get(connection_id)
            if waiter is not None and waiter.token == token:
                self.end(waiter, EndReason.SUPERSEDED)

    def _fail_all(self) -> None:
        """Redis went away: wake-ups may have been lost, so every waiter here ends; its client
        resumes (on this process or another) once Redis is back."""
        for waiter in list(self._waiters.values()):
            self.end(waiter, EndReason.BACKEND_UNAVAILABLE)

    async def _listen_forever(self, subscribed: asyncio.Event) -> None:
        delay = 0.1
        while True:
            assert self.store.sub is not None
            pubsub = self.store.sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel, CLUSTER_CHANNEL)
                self._subscribed = True
                subscribed.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(str(message["data"]))
            except (*UNAVAILABLE, RedisError) as exc:
                if self._subscribed:
                    log.warning("Redis subscription lost (%s); ending this process's waiters", exc)
                    self._subscribed = False
                    self._fail_all()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def _beat_forever(self) -> None:
        """Say this process is alive (for /stats), forget expired connections from the index,
        and notice a Redis that stopped answering (a silent link the subscription can't see)."""
        while True:
            try:
                stale = time.monotonic() - 2 * BEAT_SECONDS
                self._early = {cid: at for cid, at in self._early.items() if at > stale}
                row = {"id": self.process_id, "attached": len(self._waiters), **self._counters}
                self.count("connections_expired", await self.store.beat(self.process_id, row))
                self._answering = True
            except (*UNAVAILABLE, RedisError, BackendUnavailable) as exc:
                if self._answering:
                    log.warning("Redis not answering (%s); ending this process's waiters", exc)
                    self._answering = False
                    self._fail_all()
            await asyncio.sleep(BEAT_SECONDS)

    # -- publishing -----------------------------------------------------------------------------

    async def apublish(self, connection_id: str, text: str) -> int:
        """:meth:`publish` on the server's loop."""
        text = check_text(text, self.settings.max_message_bytes)
        if self._closing:
            raise ServerShuttingDown()
        seq = await self.store.append(connection_id, EventType.MESSAGE, text, None)
        self.count("messages_published")
        return seq

    async def abroadcast(self, text: str) -> int:
        """:meth:`broadcast` on the server's loop: one pipelined append per connection."""
        text = check_text(text, self.settings.max_message_bytes)
        if self._closing:
            raise ServerShuttingDown()
        ids = await self.store.live_ids()

        async def append(connection_id: str) -> bool:
            try:
                await self.store.append(connection_id, EventType.MESSAGE, text, None)
            except (QueueFull, UnknownConnection):  # full, or expired meanwhile: skipped
                return False
            return True

        count = 0
        for start in range(0, len(ids), 500):  # a few batches at a time, pipelined
            taken = await asyncio.gather(*(append(cid) for cid in ids[start : start + 500]))
            count += sum(taken)
        self.count("messages_published", count)
        return count

    def publish(self, connection_id: str, text: str) -> int:
        """Store a durable ``message`` for one connection (wherever its client is attached) and
        return its seq; from any thread but the server's own (there: ``await apublish``)."""
        return self.call_from_thread(self.apublish(connection_id, text))

    def broadcast(self, text: str) -> int:
        """Store a durable ``message`` for every connection of every process; return how many
        took it. From any thread but the server's own (there: ``await abroadcast``)."""
        return self.call_from_thread(self.abroadcast(text))

    # -- for notebooks, /stats and tests (any thread but the server's own) --------------------

    def __contains__(self, connection_id: object) -> bool:
        return (
            isinstance(connection_id, str)
            and self.call_from_thread(self.store.state(connection_id)) is not None
        )

    def __len__(self) -> int:
        return self.call_from_thread(self.store.count())

    def state_of(self, connection_id: str) -> ConnectionState:
        """``live``, ``waiting`` or ``disconnected``; raises :class:`UnknownConnection`."""
        state = self.call_from_thread(self.store.state(connection_id))
        if state is None:
            raise UnknownConnection()
        return state

    def disconnect_all(self, transport: Transport | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (``None``: all) in the whole cluster:
        this process's now, every other process's when the message reaches it (pub/sub, within
        milliseconds). Returns how many this process cut; each process counts its own in
        ``waiters_cut`` (``/stats``, per process). Their clients resume, here or on another
        process, with nothing lost."""
        return self.call_from_thread(self._adisconnect_all(transport))

    async def _adisconnect_all(self, transport: Transport | None) -> int:
        count = self._cut(transport)
        message = f"c:{self.process_id}:{'' if transport is None else transport.value}"
        await self.store.publish(CLUSTER_CHANNEL, message)
        return count

    def stats(self) -> dict[str, Any]:
        """:meth:`astats` from any thread but the server's own (a widget's sampler)."""
        return self.call_from_thread(self.astats())

    async def astats(self) -> dict[str, Any]:
        """/stats: the cluster's connections (from Redis), this process's counters, and every
        live process's row. Short ids only, never message text."""
        tally, addresses, processes = await self.store.tally()
        return tally.answer(
            self._counters,
            time.monotonic() - self._started,
            addresses,  # counted ones (classroom limits), cluster-wide
            backend="redis",
            process={"id": self.process_id, "attached": len(self._waiters)},
            processes=processes,
        )
