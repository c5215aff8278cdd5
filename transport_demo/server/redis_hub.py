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

Clients of Redis are made in :meth:`RedisHub.start`, on the server's own loop (a redis.asyncio
client belongs to the loop that made it). :meth:`publish` and :meth:`broadcast` may be called from
any other thread (a notebook's): they run on the server's loop and wait for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events, redis_scripts
from .admission import RateLimit
from .connection import MAX_BATCH_BYTES, check_text, is_connection_id, new_connection_id
from .errors import (
    BackendUnavailable,
    QueueFull,
    RateLimited,
    ServerShuttingDown,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from .held_polls import hold_for, hold_poll, with_queued_seq
from .protocol import ConnectionState, EndReason, EventType, Transport
from .redis_calls import Arg, ScriptCalls
from .registry import COUNTERS
from .settings import Settings
from .stats import StatsTally
from .stream_loop import StreamLoop
from .transports import info, is_stream
from .waiters import MAX_UNSENT_ERRORS, Outgoing, Waiting

__all__ = ["KEY_PREFIX", "RedisHub", "RedisStream", "connection_keys"]

log = logging.getLogger("transport_demo.redis")

KEY_PREFIX = "td"
INDEX_KEY = f"{KEY_PREFIX}:index"
PROCESSES_KEY = f"{KEY_PREFIX}:procs"  # hash: process id -> its /stats row (JSON)
PROCESSES_SEEN_KEY = f"{KEY_PREFIX}:procs:seen"  # sorted set: process id -> last beat (ms)
CLUSTER_CHANNEL = f"{KEY_PREFIX}:all"  # pub/sub: what every process must do (an operator's cut)
ADDRESSES_KEY = f"{KEY_PREFIX}:addrs"  # sorted set: counted client address -> when its last expires
MAX_BATCH = 1000  # events one script returns; a longer backlog takes several
BEAT_SECONDS = 1.0  # how often a process says it is alive (and checks that Redis is)
COMMAND_TIMEOUT = 2.0  # seconds a command may take before Redis counts as unavailable

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)

T = TypeVar("T")


def connection_keys(connection_id: str) -> list[str]:
    """The keys a script is given for one connection: its hash, its log and the index."""
    return [f"{KEY_PREFIX}:{{{connection_id}}}", f"{KEY_PREFIX}:{{{connection_id}}}:log", INDEX_KEY]


class _Waiter(Waiting):
    """A held poll or an attached stream in this process; ``token`` names it in Redis."""

    __slots__ = ("cleared", "connection_id", "pending", "token", "transport")

    def __init__(self, connection_id: str, transport: Transport = Transport.LONG_POLLING) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.transport = transport
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


class RedisStream(StreamLoop, _Waiter):
    """An SSE or WebSocket stream attached to a connection kept in Redis (the same interface as
    :class:`~transport_demo.server.stream.Stream`)."""

    __slots__ = ("connected", "hub", "outbox")

    def __init__(self, hub: RedisHub, connection_id: str, transport: Transport) -> None:
        super().__init__(connection_id, transport)
        self.hub = hub
        self.connected = Outgoing("")
        self.outbox: list[Outgoing] = []

    @property
    def heartbeat_interval(self) -> float:
        return self.hub.settings.heartbeat_interval

    def _connection_id(self) -> str:
        return self.connection_id

    async def areceive(self, text: str) -> int:
        """The client sent ``text`` on this stream: store its echo, return the seq."""
        return await self.hub.areceive(self.connection_id, text, self.transport)

    def send_error(self, code: str, detail: str) -> bool:
        """Queue an ``error`` event for this stream only; ``False`` when too many wait."""
        if len(self.outbox) >= MAX_UNSENT_ERRORS:
            return False
        self.outbox.append(self._error(code, detail))
        self.wakeup.set()
        return True

    async def aclose(self) -> None:
        """The socket is gone: detach in Redis (the connection waits out its resume grace)."""
        if self.ended is None:
            self.ended = EndReason.CLOSED
        await self.hub._detach(self, self.hub.settings.resume_grace)

    def _gone(self, answer: int) -> None:
        """A script said this stream may not go on: another took over (-4), or the connection is
        no longer in Redis (-1: it expired, or Redis lost it). The client is told which: a
        superseded stream ends quietly (WebSocket 4000: do not reconnect); a lost connection ends
        with an ``unknown_connection`` error (WebSocket 1001), and its reconnection is told
        ``resume_failed``, never handed another history."""
        self.stop(EndReason.SUPERSEDED if answer == -4 else EndReason.EXPIRED)

    def _error(self, code: str, detail: str) -> Outgoing:
        return Outgoing(events.encode(events.error_event(self.connection_id, code, detail)))

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
        reply = await hub._call(
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
        reply = await hub._call("BEAT", self.connection_id, self.token, hub._attached_ttl_ms())
        count = int(reply[0])
        if count < 0:
            self._gone(count)
            return None
        hub.count("heartbeats_sent")
        return Outgoing(events.heartbeat_event(self.connection_id, count))


class RedisHub:
    """Connections kept in Redis; see the module docstring. The same interface as
    :class:`~transport_demo.server.hub.Hub` (:class:`~transport_demo.server.backend.Backend`)."""

    def __init__(self, settings: Settings, *, process_id: str | None = None) -> None:
        if not settings.redis_url:
            raise ValueError("RedisHub needs settings.redis_url")
        self.settings = settings
        self.url: str = settings.redis_url
        self.process_id = (
            process_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self._channel = f"{KEY_PREFIX}:w:{self.process_id}"
        self._redis: aioredis.Redis | None = None
        self._sub: aioredis.Redis | None = None
        self._calls: ScriptCalls | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._waiters: dict[str, _Waiter] = {}
        self._early: dict[str, float] = {}  # wake-ups for waiters not adopted yet (id -> when)
        # Texts per second per connection, counted in this process (a client that spreads its
        # sends over n processes gets up to n times the rate); a bucket is forgotten once it has
        # refilled (RateLimit.prune), which changes no answer: a full bucket is a new one.
        self._rates = RateLimit(settings.max_messages_per_second, settings.message_burst)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False  # the wake-up channel is subscribed
        self._answering = True  # the last beat reached Redis
        self._closing = False
        self._started = time.monotonic()
        self._counters = dict.fromkeys(COUNTERS, 0)

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the Redis clients on this loop, subscribe, start the process beat. Returns even
        when Redis is down (the server then answers 503 until it comes back)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        retry = Retry(
            ExponentialBackoff(cap=0.05, base=0.01), 1
        )  # one retry: a stale pooled socket
        self._redis = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=1.0,
            retry=retry,
        )
        self._sub = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            # Above get_message's 1 s wait: a blocking read longer than socket_timeout raises
            # TimeoutError (redis-py #3138).
            socket_timeout=5.0,
            socket_connect_timeout=1.0,
            health_check_interval=2,
        )
        self._calls = ScriptCalls(
            self._redis, {name: getattr(redis_scripts, name) for name in redis_scripts.__all__}
        )
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen_forever(subscribed), name="transport-demo-redis-sub"),
            asyncio.create_task(self._beat_forever(), name="transport-demo-redis-beat"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await subscribed.wait()

    async def close(self, timeout: float = 0.5) -> None:
        """End every stream and held poll (``shutdown``), wait up to ``timeout`` for them to
        detach, then close the Redis clients."""
        self._closing = True
        for waiter in list(self._waiters.values()):
            self._end(waiter, EndReason.SHUTDOWN)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._waiters and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._calls is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await self._calls.aclose()
        if self._redis is not None:
            with contextlib.suppress(*_UNAVAILABLE, RedisError):
                async with asyncio.timeout(0.5):
                    await self._redis.zrem(PROCESSES_SEEN_KEY, self.process_id)
                    await self._redis.hdel(PROCESSES_KEY, self.process_id)
        for client in (self._redis, self._sub):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._redis = self._sub = None
        self._calls = None
        self._subscribed = False

    # -- talking to Redis -------------------------------------------------------------------

    async def _call(self, name: str, connection_id: str, *args: Arg) -> list[Any]:
        """Run the script ``name`` of :mod:`redis_scripts` on one connection's keys (pipelined
        with the other calls of this moment: :mod:`transport_demo.server.redis_calls`)."""
        calls = self._calls
        if calls is None:
            raise BackendUnavailable()
        if not is_connection_id(connection_id):
            # What every script answers for a connection that is not in Redis: an id a client
            # made up never names a key (nor is sent to Redis at all).
            return [-1]
        try:
            reply = await calls.run(name, connection_keys(connection_id), [connection_id, *args])
        except _UNAVAILABLE:
            raise BackendUnavailable() from None
        except ResponseError as exc:
            if "LOADING" in str(exc) or "MASTERDOWN" in str(exc):
                raise BackendUnavailable() from None
            raise
        return list(reply)

    def _ready(self) -> None:
        """Refuse new work while closing or while wake-ups can't reach this process."""
        if self._closing:
            raise ServerShuttingDown()
        if not (self._subscribed and self._answering):
            raise BackendUnavailable()

    def _attached_ttl_ms(self) -> float:
        s = self.settings
        return (3 * s.heartbeat_interval + s.resume_grace + 1) * 1000

    def _idle_ttl_ms(self) -> float:
        return self.settings.effective_poll_expiry * 1000

    # -- wake-ups and ends --------------------------------------------------------------------

    def _end(self, waiter: _Waiter, reason: EndReason) -> None:
        waiter.stop(reason)
        waiter.wakeup.set()

    def _supersede_here(self, owner: str | None, token: str | None, connection_id: str) -> None:
        """End the waiter that was attached, if it is in this process. Called right after the
        script that took over, with no await in between, so no wake-up is missed."""
        if owner == self.process_id:
            waiter = self._waiters.get(connection_id)
            if waiter is not None and waiter.token == token:
                self._end(waiter, EndReason.SUPERSEDED)

    async def _supersede(self, owner: str | None, token: str | None, mine: _Waiter) -> None:
        """Tell the waiter that was attached on another process that it is over."""
        if not owner or not token or token == mine.token or owner == self.process_id:
            return
        if self._redis is None:
            return
        with contextlib.suppress(*_UNAVAILABLE):  # the old one then ends on its next take
            await self._redis.publish(f"{KEY_PREFIX}:w:{owner}", f"e:{mine.connection_id}:{token}")

    def _on_message(self, data: str) -> None:
        kind, _, rest = data.partition(":")
        if kind == "w":
            waiter = self._waiters.get(rest)
            if waiter is not None:
                waiter.wake()
            elif len(self._early) < 10_000:
                # The append's wake-up can overtake the reply to the script that attached the
                # waiter (two sockets): keep it for a moment, and _adopt hands it over.
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
                self._end(waiter, EndReason.SUPERSEDED)

    def _fail_all(self) -> None:
        """Redis went away: wake-ups may have been lost, so every waiter here ends; its client
        resumes (on this process or another) once Redis is back."""
        for waiter in list(self._waiters.values()):
            self._end(waiter, EndReason.BACKEND_UNAVAILABLE)

    async def _listen_forever(self, subscribed: asyncio.Event) -> None:
        delay = 0.1
        while True:
            assert self._sub is not None
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel, CLUSTER_CHANNEL)
                self._subscribed = True
                subscribed.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(str(message["data"]))
            except (*_UNAVAILABLE, RedisError) as exc:
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
                await self._beat()
                self._answering = True
            except (*_UNAVAILABLE, RedisError) as exc:
                if self._answering:
                    log.warning("Redis not answering (%s); ending this process's waiters", exc)
                    self._answering = False
                    self._fail_all()
            await asyncio.sleep(BEAT_SECONDS)

    async def _beat(self) -> None:
        assert self._redis is not None
        stale = time.monotonic() - 2 * BEAT_SECONDS
        self._early = {cid: at for cid, at in self._early.items() if at > stale}
        now_ms = int(time.time() * 1000)
        row = {"id": self.process_id, "attached": len(self._waiters), **self._counters}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(PROCESSES_SEEN_KEY, {self.process_id: now_ms})
            pipe.hset(PROCESSES_KEY, self.process_id, json.dumps(row))
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now_ms)
            pipe.zremrangebyscore(ADDRESSES_KEY, "-inf", now_ms)
            replies = await pipe.execute()
        self._counters["connections_expired"] += int(replies[2])

    # -- connections ----------------------------------------------------------------------------

    async def _create(
        self, transport: Transport, owner: str, token: str, ttl_ms: float, address: str | None
    ) -> str:
        connection_id = new_connection_id()
        limit = self.settings.max_connections_per_address
        counted = address if address is not None and limit is not None else ""
        reply = await self._call(
            "CREATE",
            connection_id,
            transport.value,
            repr(time.time()),
            ttl_ms,
            self.settings.max_connections,
            owner,
            token,
            counted,
            limit or 0,
        )
        if int(reply[0]) == -5:
            raise TooManyConnections.of(self.settings.max_connections)
        if int(reply[0]) == -6:
            self._counters["refused_per_address"] += 1
            raise TooManyConnectionsFromAddress.of(address, limit)
        self._counters["connections_opened"] += 1
        return connection_id

    async def aconnect_long_poll(self, address: str | None = None) -> str:
        """Create a long-polling connection; return its encoded ``connected`` event. ``address``
        counts against ``max_connections_per_address`` across every process (kept in Redis)."""
        self._ready()
        connection_id = await self._create(
            Transport.LONG_POLLING, "", "", self._idle_ttl_ms(), address
        )
        settings = self.settings
        return events.poll_connected(
            connection_id,
            poll_timeout=settings.poll_timeout,
            expires_after=settings.effective_poll_expiry,
        )

    async def aopen_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
        *,
        address: str | None = None,
    ) -> RedisStream:
        """Attach a stream: resume ``connection_id`` after ``last_seq`` (on whichever process it
        was attached before), or start a new connection (``resume_failed`` says why)."""
        self._ready()
        extra: dict[str, Any] = {}
        stream: RedisStream | None = None
        point = 0
        if connection_id is not None:
            stream = RedisStream(self, connection_id, transport)
            reply = await self._call(
                "ATTACH",
                connection_id,
                transport.value,
                self.process_id,
                stream.token,
                "" if last_seq is None else last_seq,
                self._attached_ttl_ms(),
            )
            if int(reply[0]) == 1:
                self._counters["streams_resumed"] += 1
                point = int(reply[1])
                self._supersede_here(reply[2], reply[3], connection_id)
                self._adopt(stream)
                await self._supersede(reply[2], reply[3], stream)
            else:
                stream = None
                self._counters["resumes_failed"] += 1
                extra["resume_failed"] = UnknownConnection.code
        if stream is None:
            stream = RedisStream(self, "", transport)
            stream.connection_id = await self._create(
                transport, self.process_id, stream.token, self._attached_ttl_ms(), address
            )
            self._adopt(stream)
        settings = self.settings
        connected = events.stream_connected(
            stream.connection_id,
            transport.value,
            resumed=not extra and connection_id is not None,
            last_seq=point,
            heartbeat_interval=settings.heartbeat_interval,
            resume_grace=settings.resume_grace,
            **extra,
        )
        stream.connected = Outgoing(connected, f"{stream.connection_id}:{point}")
        return stream

    def _adopt(self, waiter: _Waiter) -> None:
        previous = self._waiters.get(waiter.connection_id)
        if previous is not None and previous is not waiter:
            self._end(previous, EndReason.SUPERSEDED)
            waiter.wake()  # a wake-up the previous one took may have been meant for this one
        if self._early.pop(waiter.connection_id, None) is not None:
            waiter.wake()
        self._waiters[waiter.connection_id] = waiter

    async def _detach(self, waiter: _Waiter, ttl_seconds: float) -> None:
        try:
            if self._waiters.get(waiter.connection_id) is waiter and self._redis is not None:
                with contextlib.suppress(BackendUnavailable):
                    await asyncio.shield(
                        self._call("DETACH", waiter.connection_id, waiter.token, ttl_seconds * 1000)
                    )
        finally:
            if self._waiters.get(waiter.connection_id) is waiter:
                del self._waiters[waiter.connection_id]

    # -- durable events -------------------------------------------------------------------------

    async def _append(
        self,
        connection_id: str,
        event_type: EventType,
        text: str,
        transport: Transport | None,
        *,
        wake: bool = True,
    ) -> int:
        prefix, suffix = events.durable_event_halves(event_type, connection_id, text, time.time())
        reply = await self._call(
            "APPEND",
            connection_id,
            "" if transport is None else transport.value,
            prefix,
            suffix,
            self.settings.max_queue,
            self.settings.replay_window,
            "0" if transport is None else "1",
            "1" if wake else "0",
        )
        seq = int(reply[0])
        if seq == -1:
            raise UnknownConnection()
        if seq == -2:
            raise QueueFull.of(reply[1], self.settings.max_queue)
        return seq

    async def apublish(self, connection_id: str, text: str) -> int:
        """:meth:`publish` on the server's loop."""
        text = check_text(text, self.settings.max_message_bytes)
        if self._closing:
            raise ServerShuttingDown()
        seq = await self._append(connection_id, EventType.MESSAGE, text, None)
        self._counters["messages_published"] += 1
        return seq

    async def abroadcast(self, text: str) -> int:
        """:meth:`broadcast` on the server's loop: one pipelined append per connection."""
        text = check_text(text, self.settings.max_message_bytes)
        if self._closing:
            raise ServerShuttingDown()
        if self._redis is None:
            raise BackendUnavailable()
        try:
            ids: list[str] = [
                str(i)
                for i in await self._redis.zrangebyscore(INDEX_KEY, int(time.time() * 1000), "+inf")
            ]
        except _UNAVAILABLE:
            raise BackendUnavailable() from None

        async def append(connection_id: str) -> bool:
            try:
                await self._append(connection_id, EventType.MESSAGE, text, None)
            except (QueueFull, UnknownConnection):  # full, or expired meanwhile: skipped
                return False
            return True

        count = 0
        for start in range(0, len(ids), 500):  # a few batches at a time, pipelined
            taken = await asyncio.gather(*(append(cid) for cid in ids[start : start + 500]))
            count += sum(taken)
        self._counters["messages_published"] += count
        return count

    async def areceive(self, connection_id: str, text: str, transport: Transport) -> int:
        """A client sent ``text``: store its echo (``message``, on WebSocket ``user_message``)."""
        return await self._receive(connection_id, text, transport, wake=True)

    async def _receive(
        self, connection_id: str, text: str, transport: Transport, *, wake: bool
    ) -> int:
        text = check_text(text, self.settings.max_message_bytes)
        if self._closing:
            raise ServerShuttingDown()
        if not is_connection_id(connection_id):
            raise UnknownConnection()  # before a rate bucket is keyed by it
        now = time.monotonic()
        self._rates.prune(now)
        try:
            self._rates.take(connection_id, now)
        except RateLimited:
            self._counters["rate_limited"] += 1
            raise
        event_type = info(transport).echo
        try:
            seq = await self._append(connection_id, event_type, text, transport, wake=wake)
        except UnknownConnection:
            self._rates.forget(connection_id)  # a well-formed id of no connection keeps no bucket
            raise
        self._counters["messages_received"] += 1
        return seq

    def publish(self, connection_id: str, text: str) -> int:
        """Store a durable ``message`` for one connection (wherever its client is attached) and
        return its seq; from any thread but the server's own (there: ``await apublish``)."""
        return self._from_thread(self.apublish(connection_id, text))

    def broadcast(self, text: str) -> int:
        """Store a durable ``message`` for every connection of every process; return how many
        took it. From any thread but the server's own (there: ``await abroadcast``)."""
        return self._from_thread(self.abroadcast(text))

    # -- the memory hub's synchronous look-ups, for notebooks and tests (any other thread) -----

    def __contains__(self, connection_id: object) -> bool:
        return (
            isinstance(connection_id, str)
            and self._from_thread(self._state(connection_id)) is not None
        )

    def __len__(self) -> int:
        return self._from_thread(self._count())

    def state_of(self, connection_id: str) -> ConnectionState:
        """``live``, ``waiting`` or ``disconnected``; raises :class:`UnknownConnection`."""
        state = self._from_thread(self._state(connection_id))
        if state is None:
            raise UnknownConnection()
        return state

    async def _state(self, connection_id: str) -> ConnectionState | None:
        if self._redis is None:
            raise BackendUnavailable()
        try:
            transport, owner = await self._redis.hmget(connection_keys(connection_id)[0], "t", "o")
        except _UNAVAILABLE:
            raise BackendUnavailable() from None
        return None if transport is None else _state_of(str(transport), str(owner or ""))

    async def _count(self) -> int:
        if self._redis is None:
            raise BackendUnavailable()
        try:
            return int(await self._redis.zcount(INDEX_KEY, int(time.time() * 1000), "+inf"))
        except _UNAVAILABLE:
            raise BackendUnavailable() from None

    def stats(self) -> dict[str, Any]:
        """:meth:`astats` from any thread but the server's own (a widget's sampler)."""
        return self._from_thread(self.astats())

    def disconnect_all(self, transport: Transport | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (``None``: all three) in the whole
        cluster: this process's now, every other process's when the message reaches it (pub/sub,
        within milliseconds). Returns how many this process cut; each process counts its own in
        ``waiters_cut`` (``/stats``, per process). Their clients resume, here or on another
        process, with nothing lost. Any thread but the server's own."""
        return self._from_thread(self._disconnect_all(transport))

    async def _disconnect_all(self, transport: Transport | None) -> int:
        count = self._cut(transport)
        if self._redis is not None:
            message = f"c:{self.process_id}:{'' if transport is None else transport.value}"
            with contextlib.suppress(*_UNAVAILABLE):  # Redis away: its waiters end anyway
                await self._redis.publish(CLUSTER_CHANNEL, message)
        return count

    def _cut(self, transport: Transport | None) -> int:
        cut = [
            waiter
            for waiter in self._waiters.values()
            if waiter.ended is None and (transport is None or waiter.transport is transport)
        ]
        for waiter in cut:
            self._end(waiter, EndReason.CUT)
        self._counters["waiters_cut"] += len(cut)
        return len(cut)

    def _from_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise BackendUnavailable()
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError("On the server's own loop, await apublish()/abroadcast() instead.")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(COMMAND_TIMEOUT * 3)

    # -- long polling ---------------------------------------------------------------------------

    async def apoll(
        self, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
    ) -> str:
        """Answer a long poll (:func:`transport_demo.server.held_polls.hold_poll`, with this hub's
        scripts as its steps): a poll held here is woken by an append on any process."""
        settings = self.settings
        if hold is None:
            hold = hold_for(settings.poll_timeout, settings.poll_hold_jitter)
        steps = _RedisPollSteps(self, last_seq)
        return await hold_poll(steps, connection_id, last_seq, hold, settings.poll_timeout)

    async def _poll_step(self, waiter: _Waiter, last_seq: Arg, mode: str, hold: float) -> list[Any]:
        reply = await self._call(
            "POLL",
            waiter.connection_id,
            last_seq,
            self.process_id,
            waiter.token,
            mode,
            "1" if hold > 0 else "0",
            hold * 1000 + self._idle_ttl_ms(),
            self._idle_ttl_ms(),
            MAX_BATCH,
            self.settings.replay_window,
            MAX_BATCH_BYTES,
        )
        reply[0] = int(reply[0])
        return reply

    def _poll_answer(self, connection_id: str, reply: list[Any]) -> str:
        n = reply[0]
        self.count("events_sent", n)
        return events.poll_batch(connection_id, [str(reply[i]) for i in range(4, 4 + 2 * n, 2)])

    async def asend_and_poll(
        self, connection_id: str, text: str, last_seq: int | None = None
    ) -> str:
        """A text sent on long polling: store it, then answer at once like a poll, with
        ``queued_seq``. A poll held meanwhile is superseded by this one, as in memory: it is
        not woken by the append (it would race this answer for the echo), but ended by the
        take-over that follows."""
        seq = await self._receive(connection_id, text, Transport.LONG_POLLING, wake=False)
        return with_queued_seq(await self.apoll(connection_id, last_seq, hold=0), seq)

    # -- monitoring -----------------------------------------------------------------------------

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to one of this process's /stats counters."""
        self._counters[counter] += n

    async def astats(self) -> dict[str, Any]:
        """/stats: the cluster's connections (from Redis), this process's counters, and every
        live process's row. Short ids only, never message text."""
        if self._redis is None:
            raise BackendUnavailable()
        now_ms = int(time.time() * 1000)
        try:
            ids: list[str] = [
                str(i) for i in await self._redis.zrangebyscore(INDEX_KEY, now_ms, "+inf")
            ]
            async with self._redis.pipeline(transaction=False) as pipe:
                for connection_id in ids:
                    pipe.hmget(
                        connection_keys(connection_id)[0], "t", "o", "s", "r", "d", "rc", "c", "ls"
                    )
                pipe.zcount(ADDRESSES_KEY, now_ms, "+inf")
                pipe.zrangebyscore(PROCESSES_SEEN_KEY, now_ms - 3000 * BEAT_SECONDS, "+inf")
                pipe.hgetall(PROCESSES_KEY)
                replies = await pipe.execute()
        except _UNAVAILABLE:
            raise BackendUnavailable() from None
        addresses, live_procs, rows = replies[-3], replies[-2], replies[-1]
        tally = StatsTally()
        for connection_id, fields in zip(ids, replies[:-3], strict=True):
            transport, owner = fields[0], fields[1]
            if transport is None:
                continue  # expired between the two reads
            tally.add(transport, _state_of(transport, owner), partial(_row, connection_id, fields))
        processes = [json.loads(rows[p]) for p in live_procs if p in rows]
        return tally.answer(
            self._counters,
            time.monotonic() - self._started,
            int(addresses),  # counted ones (classroom limits), cluster-wide
            backend="redis",
            process={"id": self.process_id, "attached": len(self._waiters)},
            processes=processes,
        )


class _RedisPollSteps:
    """The held poll's steps (:class:`~transport_demo.server.held_polls.PollSteps`) as POLL scripts:
    ``begin`` acknowledges, answers or attaches; ``again`` looks after a wake-up; ``final`` is the
    last look when the hold runs out. Only the waiter holding the token may take."""

    __slots__ = ("hold", "hub", "last_seq")

    def __init__(self, hub: RedisHub, last_seq: int | None) -> None:
        self.hub = hub
        self.last_seq: Arg = "" if last_seq is None else last_seq
        self.hold = 0.0

    async def poll_begin(
        self, connection_id: str, last_seq: int | None, hold: float
    ) -> tuple[str | None, _Waiter | None]:
        hub = self.hub
        hub._ready()
        self.hold = hold
        waiter = _Waiter(connection_id)
        reply = await hub._poll_step(waiter, self.last_seq, "begin", hold)
        if reply[0] < 0:
            raise UnknownConnection()
        hub._supersede_here(reply[1], reply[2], connection_id)
        if reply[0] > 0 or hold <= 0:
            await hub._supersede(reply[1], reply[2], waiter)
            return (hub._poll_answer(connection_id, reply) if reply[0] > 0 else None), None
        hub._adopt(waiter)
        await hub._supersede(reply[1], reply[2], waiter)
        return None, waiter

    async def poll_again(self, waiter: _Waiter) -> str | None:
        reply = await self.hub._poll_step(waiter, self.last_seq, "again", self.hold)
        if reply[0] == -4:  # another poll took over (the script detached this one)
            waiter.cleared = True
            waiter.stop(EndReason.SUPERSEDED)
            return None
        if reply[0] < 0:
            waiter.cleared = True
            raise UnknownConnection()
        if reply[0] > 0:
            waiter.cleared = True
            return self.hub._poll_answer(waiter.connection_id, reply)
        return None

    async def poll_final(self, waiter: _Waiter) -> str | None:
        reply = await self.hub._poll_step(waiter, self.last_seq, "final", self.hold)
        waiter.cleared = True
        return self.hub._poll_answer(waiter.connection_id, reply) if reply[0] > 0 else None

    async def poll_end(self, waiter: _Waiter) -> None:
        hub = self.hub
        if waiter.cleared:
            if hub._waiters.get(waiter.connection_id) is waiter:
                del hub._waiters[waiter.connection_id]
        else:  # superseded, shut down, cut: leave Redis saying nobody waits here
            await hub._detach(waiter, hub.settings.effective_poll_expiry)


def _row(connection_id: str, fields: list[Any]) -> dict[str, Any]:
    """A connection's /stats row from its hash (the fields ``stats`` reads)."""
    transport, owner, seq, released, delivered, received, created, seen = fields
    return {
        "id": connection_id[:8],
        "transport": transport,
        "state": _state_of(transport, owner).value,
        "queued": int(seq) - int(released),
        "delivered": int(delivered),
        "received": int(received),
        "last_seq": int(seq),
        "created": events.timestamp(float(created)),
        "last_seen": events.timestamp(int(seen) / 1000),
        "process": owner or None,
    }


def _state_of(transport: str, owner: str | None) -> ConnectionState:
    """A connection's state from its hash: attached somewhere (``o``) is live."""
    if owner:
        return ConnectionState.LIVE
    if not is_stream(transport):
        return ConnectionState.WAITING
    return ConnectionState.DISCONNECTED
