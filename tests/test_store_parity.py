"""The two rule sets of delivery, held to each other (issue 21, item 2): random sequences of
operations run against the in-memory core (:class:`transport_demo.server.connection.Connection`)
and the
Lua scripts (:mod:`transport_demo.server.redis_scripts`) on a real Redis, with the same connection
id,
and every answer must be the same.

Operations, per connection kind:

* long polling: create, append (a publish or the client's own text), poll without ``last_seq``
  (sending counts as delivering), poll with ``last_seq`` (which acknowledges), expire;
* a stream (SSE, WebSocket): create (attached), append, take (what the stream has not written),
  attach-resume with or without ``last_seq`` (which acknowledges), expire.

``last_seq`` is what the client saw last, or any seq from 0 to the newest: never past the newest,
where the two stores answer differently by design (pinned by its own test below).

Compared after every step: the seq an append got or its ``queue_full`` refusal (and the pending
count the refusal reports), the seqs and the contractual fields (type, connection_id, seq,
message; not the timestamp) of what a poll or a take returns, the resume point of an attach, the
counters (newest seq, acknowledged, released, delivered) and the stored replay window.

Limits are small (mostly ``max_queue`` 5, ``replay_window`` 4; else 2 and 3, or 3 and 1) so
queue-full and window trimming happen, and texts reach 64 Ki characters of up to six bytes each
once encoded, so the 256 KiB cap on one batch
(:data:`~transport_demo.server.connection.MAX_BATCH_BYTES`)
splits batches and lets a single event over it go alone; two fixed examples put a batch exactly at
the cap and one byte over it.

Expiry is Redis's own TTL: the step sets the keys' expiry to 1 ms and waits until Redis has
dropped them; the memory side removes the connection (as :class:`MemoryStore.remove` does when a
hub sweeps it). Every later operation must then be refused as an unknown connection on both
sides. When a connection expires (the TTLs the scripts set, ``Connection.expired``) is a matter
of clocks and the hubs, not of these rules, and is not compared here.

It found one divergence, now fixed: a stream resumed without ``last_seq`` was replayed, from
memory, released events older than the replay window that the scripts had freed on append
(``test_a_resume_without_last_seq_replays_the_same_events_in_memory_and_in_redis``).
``--hypothesis-show-statistics`` shows what the examples reached (queue full, batch split by the
byte cap, window trimming, expiry); ``PARITY_EXAMPLES=5000`` searches deeper.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transport_demo.lab.local_redis import LocalRedis, start_redis
from transport_demo.server import redis_scripts
from transport_demo.server.connection import MAX_BATCH_BYTES, Connection, Limits, new_connection_id
from transport_demo.server.errors import QueueFull
from transport_demo.server.events import durable_event_halves
from transport_demo.server.protocol import EventType, Transport
from transport_demo.server.redis_store import MAX_BATCH, connection_keys
from transport_demo.server.transports import info, is_stream

pytestmark = pytest.mark.slow

LIMITS = Limits(max_queue=5, replay_window=4)
OTHER_LIMITS = [Limits(max_queue=2, replay_window=3), Limits(max_queue=3, replay_window=1)]
EXAMPLES = int(os.environ.get("PARITY_EXAMPLES", "500"))  # per test; 5000 for a deep search
TTL_MS = 600_000  # long enough that nothing expires unless a step says so
OWNER = "parity-test"
UNKNOWN = "unknown connection"

Event = tuple[str, str, int, str]
"""The contractual fields of a durable event: type, connection_id, seq, message."""

# -- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Append:
    text: str
    received: bool  # the client's own text (its transport's echo type), else a publish


@dataclass(frozen=True)
class Poll:
    last_seq: str | float | None  # None, "seen" (the newest the client got) or a fraction of s


@dataclass(frozen=True)
class Attach:
    last_seq: str | float | None


@dataclass(frozen=True)
class Take:
    pass


@dataclass(frozen=True)
class Expire:
    pass


Operation = Append | Poll | Attach | Take | Expire

# One unit repeated: ASCII, 2-, 3- and 4-byte UTF-8, and characters JSON escapes (6 and 2 bytes).
UNITS = ["a", "é", "€", "😀", "\x01", '"', "\\", "\n", 'aé€😀\x01"\\\x00']
SIZES = [0, 1, 5, 300, 20_000, 45_000, 65_536]


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _expiring(operations: list[Operation], at: int | None) -> list[Operation]:
    """``operations`` with the connection expiring before step ``at`` (``None``: never)."""
    if at is None or at > len(operations):
        return operations
    return [*operations[:at], Expire(), *operations[at:]]


def _sequences(*others: st.SearchStrategy[Operation]) -> st.SearchStrategy[list[Operation]]:
    """Up to 30 steps, about half of them appends, and in half the sequences an expiry."""
    steps = st.lists(st.one_of(appends, appends, *others), max_size=30)
    return st.builds(_expiring, steps, st.one_of(st.none(), st.integers(0, 30)))


texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.builds(_repeat, st.sampled_from(UNITS), st.sampled_from(SIZES)),
)
last_seqs = st.one_of(st.none(), st.just("seen"), st.floats(0, 1))
appends: st.SearchStrategy[Operation] = st.builds(Append, texts, st.booleans())
limits = st.one_of(st.just(LIMITS), st.just(LIMITS), st.sampled_from(OTHER_LIMITS))
poll_ops = _sequences(st.builds(Poll, last_seqs))
stream_ops = _sequences(st.builds(Attach, last_seqs), st.just(Take()))


# -- the two sides --------------------------------------------------------------------------------


def _fields(data: str) -> Event:
    parsed = json.loads(data)
    return parsed["type"], parsed["connection_id"], parsed["seq"], parsed["message"]


class MemorySide:
    """The connection in memory, used as the memory hub uses it (stream.py, held_polls.py)."""

    def __init__(self, connection_id: str, transport: Transport, limits: Limits = LIMITS) -> None:
        self.conn: Connection | None = Connection(
            connection_id, transport, 0.0, wall=time.time(), limits=limits
        )
        if is_stream(transport):
            self.conn.resume(None)  # open_stream: a new stream resumes from nothing

    def append(self, event_type: EventType, text: str) -> int | str:
        if self.conn is None:
            return UNKNOWN
        try:
            return self.conn.append(event_type, text, wall=time.time())
        except QueueFull:
            return f"queue full, {self.conn.pending} pending"

    def poll(self, last_seq: int | None) -> list[Event] | str:
        if self.conn is None:
            return UNKNOWN
        return [_fields(data) for data in self.conn.poll_batch(last_seq)]

    def attach(self, last_seq: int | None) -> int | str:
        if self.conn is None:
            return UNKNOWN
        return self.conn.resume(last_seq)

    def take(self) -> list[Event] | str:
        if self.conn is None:
            return UNKNOWN
        batch = self.conn.take_unsent()
        events = [_fields(data) for _, data in batch]
        assert [seq for seq, _ in batch] == [event[2] for event in events]
        return events

    def expire(self) -> None:
        self.conn = None  # MemoryStore.remove

    def counters(self) -> tuple[int, int, int, int] | str:
        conn = self.conn
        if conn is None:
            return UNKNOWN
        return conn.last_seq, conn.acked, conn.released, conn.delivered

    def stored(self) -> list[Event]:
        return [] if self.conn is None else [_fields(data) for _, data in self.conn.buffer]


class RedisSide:
    """The same connection in Redis, driven by the scripts with the arguments RedisHub passes."""

    def __init__(
        self,
        client: redis.Redis,
        connection_id: str,
        transport: Transport,
        limits: Limits = LIMITS,
    ) -> None:
        self.client = client
        self.limits = limits
        self.id = connection_id
        self.transport = transport
        self.keys = connection_keys(connection_id)
        # A stream is created attached (aopen_stream); a long-polling connection is not.
        self.token = secrets.token_hex(8) if is_stream(transport) else ""
        reply = self._run(
            "CREATE",
            transport.value,
            repr(time.time()),
            TTL_MS,
            10**9,
            OWNER if self.token else "",
            self.token,
            "",
            0,
        )
        assert reply == [1]

    def _run(self, name: str, *args: str | int | float) -> list[Any]:
        """The script's reply (redis-py loads it on the first call, then calls it by SHA)."""
        script = self.client.register_script(getattr(redis_scripts, name))
        return list(script(keys=self.keys, args=[self.id, *args]))

    def append(self, event_type: EventType, text: str, received: bool) -> int | str:
        prefix, suffix = durable_event_halves(event_type, self.id, text, time.time())
        reply = self._run(
            "APPEND",
            self.transport.value if received else "",
            prefix,
            suffix,
            self.limits.max_queue,
            self.limits.replay_window,
            "1" if received else "0",
            "1",
        )
        if reply[0] == -1:
            return UNKNOWN
        if reply[0] == -2:
            return f"queue full, {reply[1]} pending"
        assert reply[0] > 0, reply
        return int(reply[0])

    def poll(self, last_seq: int | None) -> list[Event] | str:
        token = secrets.token_hex(8)
        reply = self._run(
            "POLL",
            "" if last_seq is None else last_seq,
            OWNER,
            token,
            "begin",
            "0",  # answered at once, never held: a held poll is the hub's business
            TTL_MS,
            TTL_MS,
            MAX_BATCH,
            self.limits.replay_window,
            MAX_BATCH_BYTES,
            Transport.LONG_POLLING.value,
        )
        if reply[0] == -1:
            return UNKNOWN
        assert reply[0] >= 0, reply
        return self._events(reply[3:], reply[0])

    def attach(self, last_seq: int | None) -> int | str:
        self.token = secrets.token_hex(8)
        reply = self._run(
            "ATTACH",
            self.transport.value,
            OWNER,
            self.token,
            "" if last_seq is None else last_seq,
            TTL_MS,
        )
        if reply[0] == -1:
            return UNKNOWN
        assert reply[0] == 1, reply
        return int(reply[1])

    def take(self) -> list[Event] | str:
        reply = self._run("TAKE", self.token, MAX_BATCH, self.limits.replay_window, MAX_BATCH_BYTES)
        if reply[0] == -1:
            return UNKNOWN
        assert reply[0] >= 0, reply
        return self._events(reply[1:], reply[0])

    @staticmethod
    def _events(flat: list[Any], n: int) -> list[Event]:
        assert len(flat) == 2 * n
        events = [_fields(str(data)) for data in flat[1::2]]
        assert [int(seq) for seq in flat[::2]] == [event[2] for event in events]
        return events

    def expire(self) -> None:
        self.client.pexpire(self.keys[0], 1)
        self.client.pexpire(self.keys[1], 1)
        deadline = time.monotonic() + 5
        while self.client.exists(self.keys[0], self.keys[1]):  # EXISTS expires them lazily
            assert time.monotonic() < deadline, "Redis kept an expired connection"
            time.sleep(0.002)

    def counters(self) -> tuple[int, int, int, int] | str:
        values: list[Any] = self.client.hmget(self.keys[0], ["s", "a", "r", "d"])
        if values[0] is None:
            return UNKNOWN
        s, a, r, d = (int(value) for value in values)
        return s, a, r, d

    def stored(self) -> list[Event]:
        entries = self.client.xrange(self.keys[1]) or []
        return [_fields(str(fields["d"])) for _, fields in entries if fields is not None]

    def delete(self) -> None:
        self.client.delete(self.keys[0], self.keys[1])
        self.client.zrem(self.keys[2], self.id)


# -- running a sequence -------------------------------------------------------------------------


def _last_seq(choice: str | float | None, seen: int, newest: int) -> int | None:
    if choice is None:
        return None
    if choice == "seen":
        return seen
    assert isinstance(choice, float)
    return round(choice * newest)


def run(
    client: redis.Redis, transport: Transport, limits: Limits, operations: list[Operation]
) -> None:
    """Apply ``operations`` to a new connection on both sides; assert every answer is equal."""
    connection_id = new_connection_id()
    memory = MemorySide(connection_id, transport, limits)
    remote = RedisSide(client, connection_id, transport, limits)
    seen = 0  # the newest seq the client has received
    try:
        for step, op in enumerate(operations):
            where = f"step {step}: {op!r}"
            newest = memory.conn.last_seq if memory.conn is not None else 0
            answers: tuple[object, object]
            if isinstance(op, Append):
                event_type = info(transport).echo if op.received else EventType.MESSAGE
                answers = (
                    memory.append(event_type, op.text),
                    remote.append(event_type, op.text, op.received),
                )
            elif isinstance(op, Poll):
                last_seq = _last_seq(op.last_seq, seen, newest)
                answers = (memory.poll(last_seq), remote.poll(last_seq))
            elif isinstance(op, Attach):
                last_seq = _last_seq(op.last_seq, seen, newest)
                answers = (memory.attach(last_seq), remote.attach(last_seq))
            elif isinstance(op, Take):
                answers = (memory.take(), remote.take())
            else:
                memory.expire()
                remote.expire()
                answers = (None, None)
            assert answers[0] == answers[1], where
            if isinstance(answers[0], list) and answers[0]:
                seen = answers[0][-1][2]
                assert all(event[1] == connection_id for event in answers[0]), where
            assert memory.counters() == remote.counters(), where
            _same_window(memory, remote, where)
            _note(op, answers[0], memory)
    finally:
        remote.delete()


def _same_window(memory: MemorySide, remote: RedisSide, where: str) -> None:
    """The stored replay windows agree, up to when each side frees: the scripts trim on every
    append as well, the memory core only when it acknowledges or takes (``Connection._trim``), so
    memory may still hold a prefix of events that are older than the last ``replay_window`` and
    that Redis has freed. Everything else is stored alike, byte for byte but the timestamp."""
    kept, stored = memory.stored(), remote.stored()
    extra = len(kept) - len(stored)
    assert extra >= 0 and kept[extra:] == stored, where
    if extra:
        assert memory.conn is not None
        newest = memory.conn.last_seq
        window = memory.conn.limits.replay_window
        assert all(event[2] <= newest - window for event in kept[:extra]), where


def _note(op: Operation, answer: object, memory: MemorySide) -> None:
    """Label the example with what it reached (``--hypothesis-show-statistics``)."""
    if isinstance(answer, str) and answer.startswith("queue full"):
        hypothesis.event("queue full")
    if isinstance(op, Expire):
        hypothesis.event("expired")
    if isinstance(op, Append) and len(op.text) > 1000:
        hypothesis.event("large text")
    if isinstance(answer, list) and memory.conn is not None:
        if answer and answer[-1][2] < memory.conn.last_seq:
            hypothesis.event("batch split by the byte cap")
        if (
            len(answer) == 1
            and len(json.dumps(answer[0][3], ensure_ascii=False).encode()) > MAX_BATCH_BYTES
        ):
            hypothesis.event("one event over the byte cap")
    conn = memory.conn
    if conn is not None and conn.buffer and conn.buffer[0][0] > conn.acked + 1:
        hypothesis.event("replay window trimmed unacknowledged events")
    if isinstance(op, Poll | Attach) and op.last_seq is not None:
        hypothesis.event("acknowledged with last_seq")


# -- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[LocalRedis]:
    server = start_redis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(redis_server: LocalRedis) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as client:
        yield client


PARITY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PARITY
@given(limits=limits, operations=poll_ops)
def test_long_polling_follows_the_same_rules_in_memory_and_in_redis(
    client: redis.Redis, limits: Limits, operations: list[Operation]
) -> None:
    run(client, Transport.LONG_POLLING, limits, operations)


@pytest.mark.parametrize("transport", [Transport.SSE, Transport.WEBSOCKET])
@PARITY
@given(limits=limits, operations=stream_ops)
def test_a_stream_follows_the_same_rules_in_memory_and_in_redis(
    client: redis.Redis, transport: Transport, limits: Limits, operations: list[Operation]
) -> None:
    run(client, transport, limits, operations)


@pytest.mark.parametrize("over", [0, 1], ids=["exactly-at-the-cap", "one-byte-over"])
@pytest.mark.parametrize("transport", [Transport.LONG_POLLING, Transport.SSE])
def test_a_batch_splits_at_the_same_byte_in_memory_and_in_redis(
    client: redis.Redis, transport: Transport, over: int
) -> None:
    connection_id = new_connection_id()
    memory = MemorySide(connection_id, transport)
    remote = RedisSide(client, connection_id, transport)
    try:
        # Three events whose encoded sizes add up to the cap (plus ``over`` bytes): ASCII texts,
        # sized from the encoded length of an empty one (timestamps have a fixed width).
        empty = sum(
            len(half) for half in durable_event_halves(EventType.MESSAGE, connection_id, "", 0.0)
        )
        sizes = [MAX_BATCH_BYTES // 3, MAX_BATCH_BYTES // 3]
        sizes.append(MAX_BATCH_BYTES - sum(sizes) + over)
        for seq, size in enumerate(sizes, 1):
            text = "x" * (size - empty - len(str(seq)))
            assert memory.append(EventType.MESSAGE, text) == seq
            assert remote.append(EventType.MESSAGE, text, False) == seq
            assert memory.conn is not None
            assert len(memory.conn.buffer[-1][1].encode()) == size
        first: tuple[list[Event] | str, list[Event] | str]
        if transport is Transport.LONG_POLLING:
            first = memory.poll(None), remote.poll(None)
        else:
            first = memory.take(), remote.take()
        assert first[0] == first[1]
        assert [event[2] for event in first[0]] == ([1, 2, 3] if not over else [1, 2])
        assert memory.counters() == remote.counters()
    finally:
        remote.delete()


@pytest.mark.parametrize("transport", [Transport.LONG_POLLING, Transport.SSE])
def test_a_resume_point_past_the_newest_seq_is_where_the_stores_differ_by_design(
    client: redis.Redis, transport: Transport
) -> None:
    """Memory: a ``last_seq`` past the newest acknowledges everything (a forged or confused client,
    Connection.ack). Redis: -3, "history lost" (the store was restored from an older snapshot),
    which the hub answers as an unknown connection. Pinned so that a change to either is seen."""
    connection_id = new_connection_id()
    memory = MemorySide(connection_id, transport)
    remote = RedisSide(client, connection_id, transport)
    try:
        memory.append(EventType.MESSAGE, "a")
        remote.append(EventType.MESSAGE, "a", False)
        if transport is Transport.LONG_POLLING:
            assert memory.poll(2) == []
            assert remote._run("POLL", 2, OWNER, "t", "begin", "0", TTL_MS, TTL_MS, MAX_BATCH,
                               LIMITS.replay_window, MAX_BATCH_BYTES,
                               Transport.LONG_POLLING.value) == [-3]  # fmt: skip
        else:
            assert memory.attach(2) == 1
            assert remote._run("ATTACH", transport.value, OWNER, "t", 2, TTL_MS) == [-3]
        assert memory.counters() == (1, 1, 1, 0)
        assert remote.counters() == (1, 0, 0, 0)
    finally:
        remote.delete()


def test_a_resume_without_last_seq_replays_the_same_events_in_memory_and_in_redis(
    client: redis.Redis,
) -> None:
    connection_id = new_connection_id()
    memory = MemorySide(connection_id, Transport.SSE)
    remote = RedisSide(client, connection_id, Transport.SSE)
    try:
        for seq in (1, 2, 3):
            assert (
                memory.append(EventType.MESSAGE, "")
                == remote.append(EventType.MESSAGE, "", False)
                == seq
            )
        assert memory.take() == remote.take()  # 1-3 handed to the socket: released
        for seq in (4, 5, 6):  # past the window of 4, Redis frees 1 and 2 as 5 and 6 come
            assert (
                memory.append(EventType.MESSAGE, "")
                == remote.append(EventType.MESSAGE, "", False)
                == seq
            )
        assert memory.attach(None) == remote.attach(None) == 0
        taken = memory.take(), remote.take()
        assert [event[2] for event in taken[1]] == [3, 4, 5, 6]
        assert [event[2] for event in taken[0]] == [3, 4, 5, 6]  # memory gave [1..6] before the fix
    finally:
        remote.delete()
