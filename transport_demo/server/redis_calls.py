"""Script calls to Redis, pipelined automatically: every call made while a batch is on the wire
goes out in the next batch, one write and one read for all of them.

Why: with thousands of connections, the hub makes thousands of small script calls a second
(a heartbeat, a take, an append each). One round trip per call, each on a connection of its own
from redis-py's pool, spent the server's CPU on sockets and opened ever more connections to
Redis under load (docs/benchmarks.md, "Scaling out on Redis"). Batching them the way Centrifugo's
Redis engine does (rueidis's automatic pipelining) costs an idle call nothing (a lone call leaves
at once, on the loop's next turn) and makes a busy second cost a few dozen round trips.

Invariants:

* A caller's own calls stay in order: each ``await``s its answer before it makes the next.
  Calls of different callers were never ordered (they used different pooled connections), and
  every operation is one script, atomic in Redis, so none relies on it.
* At most ``max_in_flight`` batches are on the wire; the rest wait in ``_queue`` and leave
  together as soon as one comes back. The queue holds callers, each awaiting, so it is bounded
  by what the server admits (connections, bodies), not by this module.
* A batch that fails as a whole (Redis gone, a timeout) fails each of its calls with that error;
  a call that fails alone (a script error) fails alone.
* Redis restarted empty forgets loaded scripts: a ``NOSCRIPT`` answer loads them again and re-runs
  only those calls (a script that was not found did not run).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

__all__ = ["Arg", "ScriptCalls"]

Arg = str | int | float
"""A script argument, as Redis takes it."""

Call = tuple[str, Sequence[str], Sequence[Arg], "asyncio.Future[Any]"]


class ScriptCalls:
    """``await calls.run("APPEND", keys, args)``: run a named Lua script, batched with the calls
    other tasks make meanwhile. Use on the loop that made ``client``."""

    def __init__(
        self,
        client: aioredis.Redis,
        scripts: Mapping[str, str],
        *,
        max_in_flight: int = 2,
        max_batch: int = 500,
    ) -> None:
        self._client = client
        self._sources = dict(scripts)
        self._shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in scripts.items()
        }
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._queue: list[Call] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches sent, and calls in them: their ratio is the batching achieved
        self.calls = 0

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script's answer; raises what Redis or the connection raised for this call."""
        if name not in self._shas:
            raise KeyError(f"no script named {name!r}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((name, keys, args, future))
        self._schedule()
        return await future

    async def aclose(self) -> None:
        """Wait for the batches on the wire (their callers are owed an answer)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self) -> None:
        if self._queue and not self._scheduled and self._in_flight < self._max_in_flight:
            # On the loop's next turn, not now: the calls this turn makes go out together.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_next)

    def _send_next(self) -> None:
        self._scheduled = False
        if not self._queue or self._in_flight >= self._max_in_flight:
            return
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._schedule()  # more than one batch's worth waiting, and room on the wire

    async def _send(self, batch: list[Call]) -> None:
        try:
            replies = await self._execute(batch)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            if not isinstance(exc, Exception):
                raise
        else:
            for (*_, future), reply in zip(batch, replies, strict=True):
                if future.done():  # the caller was cancelled; the script ran all the same
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        finally:
            self._in_flight -= 1
            self._schedule()

    async def _execute(self, batch: list[Call]) -> list[Any]:
        self.batches += 1
        self.calls += len(batch)
        replies = await self._pipeline(batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            for name in {batch[i][0] for i in missing}:
                self._shas[name] = await self._client.script_load(self._sources[name])
            again = await self._pipeline([batch[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for name, keys, args, _ in batch:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
