"""The Redis store: the keys, the clients and one call per operation on one connection.

Every operation on a connection is one Lua script (:mod:`transport_demo.server.redis_scripts`),
atomic in Redis, sent pipelined with the other calls of the moment
(:mod:`transport_demo.server.redis_calls`). :class:`RedisStore` turns the scripts' answers into
values and errors (:class:`~transport_demo.server.errors.UnknownConnection`, ``QueueFull``, the
connection caps) and a Redis that does not answer into
:class:`~transport_demo.server.errors.BackendUnavailable`; it knows nothing of waiters or
wake-ups (:mod:`transport_demo.server.redis_hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events, redis_scripts
from .connection import is_connection_id, new_connection_id
from .errors import (
    BackendUnavailable,
    QueueFull,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from .protocol import ConnectionState, EventType, Transport
from .redis_calls import Arg, ScriptCalls
from .settings import Settings
from .stats import StatsTally
from .transports import is_stream

__all__ = [
    "BEAT_SECONDS",
    "CLUSTER_CHANNEL",
    "KEY_PREFIX",
    "MAX_BATCH",
    "UNAVAILABLE",
    "RedisStore",
    "connection_keys",
    "process_channel",
    "state_of",
]

KEY_PREFIX = "td"
INDEX_KEY = f"{KEY_PREFIX}:index"
PROCESSES_KEY = f"{KEY_PREFIX}:procs"  # hash: process id -> its /stats row (JSON)
PROCESSES_SEEN_KEY = f"{KEY_PREFIX}:procs:seen"  # sorted set: process id -> last beat (ms)
CLUSTER_CHANNEL = f"{KEY_PREFIX}:all"  # pub/sub: what every process must do (an operator's cut)
ADDRESSES_KEY = f"{KEY_PREFIX}:addrs"  # sorted set: counted client address -> when its last expires
MAX_BATCH = 1000  # events one script returns; a longer backlog takes several
BEAT_SECONDS = 1.0  # how often a process says it is alive (and checks that Redis is)
COMMAND_TIMEOUT = 2.0  # seconds a command may take before Redis counts as unavailable

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)
"""What redis-py raises when Redis is not there to answer."""


def connection_keys(connection_id: str) -> list[str]:
    """The keys a script is given for one connection: its hash, its log and the index."""
    return [f"{KEY_PREFIX}:{{{connection_id}}}", f"{KEY_PREFIX}:{{{connection_id}}}:log", INDEX_KEY]


def process_channel(process_id: str) -> str:
    """The pub/sub channel that wakes the waiters of one process."""
    return f"{KEY_PREFIX}:w:{process_id}"


class RedisStore:
    """The clients of one server process and its calls on Redis; see the module docstring.
    :meth:`open` on the server's loop (a redis.asyncio client belongs to the loop that made it)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise ValueError("a Redis store needs settings.redis_url")
        self.settings = settings
        self.url: str = settings.redis_url
        self.redis: aioredis.Redis | None = None
        self.sub: aioredis.Redis | None = None  # for the subscription alone
        self._calls: ScriptCalls | None = None

    def open(self) -> None:
        """Make the clients on the running loop (no I/O yet: works while Redis is down)."""
        retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)  # one retry: a stale socket
        self.redis = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=1.0,
            retry=retry,
        )
        self.sub = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            # Above get_message's 1 s wait: a blocking read longer than socket_timeout raises
            # TimeoutError (redis-py #3138).
            socket_timeout=5.0,
            socket_connect_timeout=1.0,
            health_check_interval=2,
        )
        self._calls = ScriptCalls(
            self.redis, {name: getattr(redis_scripts, name) for name in redis_scripts.__all__}
        )

    async def aclose(self, process_id: str) -> None:
        """Forget this process's row and close the clients."""
        if self._calls is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await self._calls.aclose()
        if self.redis is not None:
            with contextlib.suppress(*UNAVAILABLE, RedisError):
                async with asyncio.timeout(0.5):
                    await self.redis.zrem(PROCESSES_SEEN_KEY, process_id)
                    await self.redis.hdel(PROCESSES_KEY, process_id)
        for client in (self.redis, self.sub):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.redis = self.sub = None
        self._calls = None

    def _client(self) -> aioredis.Redis:
        if self.redis is None:
            raise BackendUnavailable()
        return self.redis

    # -- one connection: one script ----------------------------------------------------------

    async def call(self, name: str, connection_id: str, *args: Arg) -> list[Any]:
        """Run the script ``name`` of :mod:`redis_scripts` on one connection's keys."""
        calls = self._calls
        if calls is None:
            raise BackendUnavailable()
        if not is_connection_id(connection_id):
            # What every script answers for a connection that is not in Redis: an id a client
            # made up never names a key (nor is sent to Redis at all).
            return [-1]
        try:
            reply = await calls.run(name, connection_keys(connection_id), [connection_id, *args])
        except UNAVAILABLE:
            raise BackendUnavailable() from None
        except ResponseError as exc:
            if "LOADING" in str(exc) or "MASTERDOWN" in str(exc):
                raise BackendUnavailable() from None
            raise
        return list(reply)

    async def create(
        self, transport: Transport, owner: str, token: str, ttl_ms: float, address: str | None
    ) -> str:
        """A new connection (attached to ``owner``'s waiter ``token``, or to nobody); its id.
        ``address`` counts against ``max_connections_per_address`` across every process."""
        connection_id = new_connection_id()
        limit = self.settings.max_connections_per_address
        counted = address if address is not None and limit is not None else ""
        reply = await self.call(
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
            raise TooManyConnectionsFromAddress.of(address, limit)
        return connection_id

    async def append(
        self,
        connection_id: str,
        event_type: EventType,
        text: str,
        transport: Transport | None,
        *,
        wake: bool = True,
    ) -> int:
        """Store a durable event (of ``transport``'s connection: ``None``, any) and publish a
        wake-up to the process its waiter is on (unless ``wake`` is false); its seq."""
        prefix, suffix = events.durable_event_halves(event_type, connection_id, text, time.time())
        reply = await self.call(
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

    # -- reads and writes of more than one connection -----------------------------------------

    async def live_ids(self) -> list[str]:
        """Every connection not expired, in any process."""
        try:
            now_ms = int(time.time() * 1000)
            return [str(i) for i in await self._client().zrangebyscore(INDEX_KEY, now_ms, "+inf")]
        except UNAVAILABLE:
            raise BackendUnavailable() from None

    async def count(self) -> int:
        """How many connections exist, in every process."""
        try:
            now_ms = int(time.time() * 1000)
            return int(await self._client().zcount(INDEX_KEY, now_ms, "+inf"))
        except UNAVAILABLE:
            raise BackendUnavailable() from None

    async def state(self, connection_id: str) -> ConnectionState | None:
        """One connection's state, or ``None`` when it is not in Redis."""
        try:
            key = connection_keys(connection_id)[0]
            transport, owner = await self._client().hmget(key, "t", "o")
        except UNAVAILABLE:
            raise BackendUnavailable() from None
        return None if transport is None else state_of(str(transport), str(owner or ""))

    async def publish(self, channel: str, message: str) -> None:
        """A pub/sub message; lost quietly when Redis is away (its waiters end anyway)."""
        if self.redis is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await self.redis.publish(channel, message)

    async def beat(self, process_id: str, row: dict[str, Any]) -> int:
        """Say this process is alive (its /stats row), drop expired connections and addresses
        from the indexes; how many connections expired."""
        now_ms = int(time.time() * 1000)
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.zadd(PROCESSES_SEEN_KEY, {process_id: now_ms})
            pipe.hset(PROCESSES_KEY, process_id, json.dumps(row))
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now_ms)
            pipe.zremrangebyscore(ADDRESSES_KEY, "-inf", now_ms)
            replies = await pipe.execute()
        return int(replies[2])

    async def tally(self) -> tuple[StatsTally, int, list[dict[str, Any]]]:
        """For /stats: the cluster's connections counted and listed, the counted client
        addresses, and every live process's row."""
        now_ms = int(time.time() * 1000)
        ids = await self.live_ids()
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for connection_id in ids:
                    pipe.hmget(
                        connection_keys(connection_id)[0], "t", "o", "s", "r", "d", "rc", "c", "ls"
                    )
                pipe.zcount(ADDRESSES_KEY, now_ms, "+inf")
                pipe.zrangebyscore(PROCESSES_SEEN_KEY, now_ms - 3000 * BEAT_SECONDS, "+inf")
                pipe.hgetall(PROCESSES_KEY)
                replies = await pipe.execute()
        except UNAVAILABLE:
            raise BackendUnavailable() from None
        addresses, live_procs, rows = replies[-3], replies[-2], replies[-1]
        tally = StatsTally()
        for connection_id, fields in zip(ids, replies[:-3], strict=True):
            transport, owner = fields[0], fields[1]
            if transport is None:
                continue  # expired between the two reads
            tally.add(transport, state_of(transport, owner), partial(_row, connection_id, fields))
        return tally, int(addresses), [json.loads(rows[p]) for p in live_procs if p in rows]


def _row(connection_id: str, fields: list[Any]) -> dict[str, Any]:
    """A connection's /stats row from its hash (the fields ``tally`` reads)."""
    transport, owner, seq, released, delivered, received, created, seen = fields
    return {
        "id": connection_id[:8],
        "transport": transport,
        "state": state_of(transport, owner).value,
        "queued": int(seq) - int(released),
        "delivered": int(delivered),
        "received": int(received),
        "last_seq": int(seq),
        "created": events.timestamp(float(created)),
        "last_seen": events.timestamp(int(seen) / 1000),
        "process": owner or None,
    }


def state_of(transport: str, owner: str | None) -> ConnectionState:
    """A connection's state from its hash: attached somewhere (``o``) is live."""
    if owner:
        return ConnectionState.LIVE
    if not is_stream(transport):
        return ConnectionState.WAITING
    return ConnectionState.DISCONNECTED
