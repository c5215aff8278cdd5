"""Script calls pipelined automatically (transport_demo.server.redis_calls), against a real
Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from transport_demo.lab.local_redis import LocalRedis, start_redis
from transport_demo.server.redis_calls import ScriptCalls

SCRIPTS = {
    "COUNT": "return redis.call('INCR', KEYS[1])",
    "ECHO": "if ARGV[1] == 'bad' then return redis.error_reply('bad input') end return ARGV[1]",
}


@pytest.fixture
def store() -> Iterator[LocalRedis]:
    with start_redis() as server:
        yield server


def client(store: LocalRedis) -> aioredis.Redis:
    return aioredis.Redis.from_url(store.url, decode_responses=True, socket_timeout=2)


@pytest.mark.anyio
async def test_calls_made_together_leave_together_and_each_gets_its_answer(
    store: LocalRedis,
) -> None:
    redis = client(store)
    calls = ScriptCalls(redis, SCRIPTS)
    answers = await asyncio.gather(*(calls.run("ECHO", ["k"], [str(i)]) for i in range(1000)))
    assert answers == [str(i) for i in range(1000)]
    counts = await asyncio.gather(*(calls.run("COUNT", ["n"], []) for _ in range(300)))
    assert sorted(counts) == list(range(1, 301))  # each ran once
    assert calls.calls == 1300
    assert calls.batches <= 10, calls.batches  # batched, not one round trip each
    await calls.aclose()
    await redis.aclose()


@pytest.mark.anyio
async def test_a_lone_call_is_answered_and_a_sequence_stays_in_order(store: LocalRedis) -> None:
    redis = client(store)
    calls = ScriptCalls(redis, SCRIPTS)
    assert [await calls.run("COUNT", ["m"], []) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert calls.batches == 5
    await redis.aclose()


@pytest.mark.anyio
async def test_a_failing_call_fails_alone(store: LocalRedis) -> None:
    redis = client(store)
    calls = ScriptCalls(redis, SCRIPTS)
    results = await asyncio.gather(
        calls.run("ECHO", ["k"], ["a"]),
        calls.run("ECHO", ["k"], ["bad"]),
        calls.run("ECHO", ["k"], ["c"]),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ResponseError) and "bad input" in str(results[1])
    with pytest.raises(KeyError, match="no script named"):
        await calls.run("MISSING", [], [])
    await redis.aclose()


@pytest.mark.anyio
async def test_scripts_forgotten_by_redis_are_loaded_again(store: LocalRedis) -> None:
    redis = client(store)
    calls = ScriptCalls(redis, SCRIPTS)
    assert await calls.run("COUNT", ["f"], []) == 1
    await redis.script_flush()  # as a Redis restarted empty
    assert await asyncio.gather(*(calls.run("COUNT", ["f"], []) for _ in range(3))) == [2, 3, 4]
    await redis.aclose()


@pytest.mark.anyio
async def test_redis_gone_fails_every_call_then_they_work_again(store: LocalRedis) -> None:
    redis = client(store)
    calls = ScriptCalls(redis, SCRIPTS)
    assert await calls.run("ECHO", ["k"], ["x"]) == "x"
    store.stop()
    results = await asyncio.gather(
        *(calls.run("ECHO", ["k"], [str(i)]) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, RedisConnectionError | OSError) for r in results), results
    store.start()
    assert await calls.run("ECHO", ["k"], ["back"]) == "back"
    await redis.aclose()
