"""Classroom measurements for the long-polling and SSE notebooks: each runs against the real
server in a few seconds and returns a record whose ``repr`` is the result a class looks at.

* :func:`idle_cost` — short polling against long polling with nothing to deliver: requests and
  bytes per minute, counted on the socket.
* :func:`gap_latency` — long polling's real latency cost: an event published while a poll is held
  against one published between an answer and the next poll, over a network slowed by a proxy.
* :func:`sse_push_delay` — how late an SSE push arrives, directly or through a (buffering) proxy.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..server.launcher import RunningServer
from .eventsource import EventStreamParser
from .proxy import FaultyProxy
from .wire import request_bytes, response_length

__all__ = [
    "GapLatency",
    "IdleCost",
    "PushDelay",
    "gap_latency",
    "idle_cost",
    "sse_push_delay",
]


# -- what idling costs ------------------------------------------------------------------------


@dataclass
class Traffic:
    """Requests made and HTTP bytes both ways, over ``seconds``."""

    name: str
    seconds: float
    requests: int = 0
    sent: int = 0
    received: int = 0

    def per_minute(self, value: int) -> float:
        return value * 60 / self.seconds


@dataclass
class IdleCost:
    """Short polling against long polling, both with nothing to deliver."""

    rows: list[Traffic]

    def __repr__(self) -> str:
        lines = [
            f"{'idle for ' + format(self.rows[0].seconds, '.0f') + ' s':<34}"
            f"{'requests':>9}{'bytes up':>10}{'bytes down':>12}"
            f"{'requests/min':>14}{'bytes/min':>11}"
        ]
        for row in self.rows:
            lines.append(
                f"{row.name:<34}{row.requests:>9}{row.sent:>10,}{row.received:>12,}"
                f"{row.per_minute(row.requests):>14.0f}"
                f"{row.per_minute(row.sent + row.received):>11,.0f}"
            )
        lines.append("(polls only, not the request that opened each connection; HTTP bytes only:")
        lines.append(" TCP/IP headers, and TLS records on https, come on top)")
        return "\n".join(lines)


class _RawClient:
    """One keep-alive HTTP/1.1 connection that counts every byte it sends and receives."""

    def __init__(self, url: str, traffic: Traffic) -> None:
        self.url = url
        self.traffic = traffic
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._streams is None:
            parts = urlsplit(self.url)
            self._streams = await asyncio.open_connection(parts.hostname, parts.port or 80)
        reader, writer = self._streams
        request = request_bytes(self.url, "POST", path, body, None)
        self.traffic.requests += 1
        self.traffic.sent += len(request)
        writer.write(request)
        await writer.drain()
        data = b""
        while (length := response_length(data)) is None:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        self.traffic.received += length
        answer: dict[str, Any] = json.loads(data[:length].partition(b"\r\n\r\n")[2])
        return answer

    def reset(self) -> None:
        self.traffic.requests = self.traffic.sent = self.traffic.received = 0

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def _short_poller(client: _RawClient, interval: float) -> None:
    cid = (await client.post("/lessons/short-poll", {}))["connection_id"]
    client.reset()  # count the polls, not the request that opened the connection
    last_seq = 0
    while True:
        await asyncio.sleep(interval)
        answer = await client.post(
            "/lessons/short-poll", {"connection_id": cid, "last_seq": last_seq}
        )
        last_seq = max([last_seq] + [e["seq"] for e in answer.get("messages", [])])


async def _long_poller(client: _RawClient) -> None:
    cid = (await client.post("/poll", {}))["connection_id"]
    client.reset()
    last_seq = 0
    while True:
        answer = await client.post("/poll", {"connection_id": cid, "last_seq": last_seq})
        last_seq = max([last_seq] + [e["seq"] for e in answer.get("messages", [])])


async def idle_cost(url: str, *, seconds: float = 6.0, short_interval: float = 1.0) -> IdleCost:
    """Run a short poller (every ``short_interval`` seconds) and a long poller side by side for
    ``seconds`` with nothing to deliver, and count their requests and bytes on the socket.

    A coroutine: ``await`` it in a cell (the notebook's event loop is already running)."""
    short = Traffic(f"short polling, every {short_interval:g} s", seconds)
    long = Traffic("long polling", seconds)
    clients = [_RawClient(url, short), _RawClient(url, long)]
    tasks = [
        asyncio.ensure_future(_short_poller(clients[0], short_interval)),
        asyncio.ensure_future(_long_poller(clients[1])),
    ]
    try:
        done, _ = await asyncio.wait(tasks, timeout=seconds)
        for task in done:  # a poller ends early only on an error: show it
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            client.close()
    return IdleCost([short, long])


# -- the gap between an answer and the next poll --------------------------------------------


@dataclass
class GapLatency:
    """Push latencies (seconds) over a network with ``delay`` seconds each way."""

    delay: float
    held: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        def shown(values: list[float]) -> str:
            each = ", ".join(f"{v * 1000:.0f}" for v in values)
            return f"median {statistics.median(values) * 1000:4.0f} ms  ({each})"

        return (
            f"one-way delay {self.delay * 1000:.0f} ms "
            f"(a round trip of {2 * self.delay * 1000:.0f} ms), {len(self.held)} rounds\n"
            f"  published while a poll was held:           {shown(self.held)}\n"
            f"  published between an answer and the next: {shown(self.gap)}"
        )


def _state(server: RunningServer, connection_id: str) -> str | None:
    """The connection's state as ``GET /stats`` shows it: ``live`` while a poll is held."""
    for conn in httpx.get(f"{server.url}/stats", timeout=5).json()["connection_list"]:
        if conn["id"] == connection_id[:8]:
            return str(conn["state"])
    return None


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.001)


def gap_latency(server: RunningServer, *, delay: float = 0.05, rounds: int = 3) -> GapLatency:
    """Measure, through a proxy that adds ``delay`` seconds each way, how long a push takes
    when it is published (a) while a poll is held at the server and (b) in the gap: the client
    has just received an answer and its next poll is on its way, so nothing is held. (b) waits
    for that poll to arrive and for the answer's way back: two one-way delays, not one."""
    result = GapLatency(delay)
    arrived: dict[str, float] = {}
    with (
        FaultyProxy(server.port, delay=delay) as proxy,
        httpx.Client(base_url=proxy.url, timeout=30) as http,
    ):
        cid = http.post("/poll", json={}).json()["connection_id"]
        stop = threading.Event()

        def poll_forever() -> None:
            last_seq = 0
            while not stop.is_set():
                answer = http.post("/poll", json={"connection_id": cid, "last_seq": last_seq})
                now = time.monotonic()
                for event in answer.json().get("messages", []):
                    arrived[event["message"]] = now
                    last_seq = event["seq"]

        poller = threading.Thread(target=poll_forever, name="gap-poller", daemon=True)
        poller.start()

        def push(text: str) -> float:
            published = time.monotonic()
            server.hub.publish(cid, text)
            _wait(lambda: text in arrived, 10, f"{text!r} to arrive")
            return arrived[text] - published

        try:
            for n in range(rounds):
                _wait(lambda: _state(server, cid) == "live", 10, "a held poll")
                result.held.append(push(f"held {n}"))
                _wait(lambda: _state(server, cid) == "live", 10, "a held poll")
                answer = f"answer {n}"
                server.hub.publish(cid, answer)  # the server answers at once...
                _wait(lambda: answer in arrived, 10, "the answer")  # noqa: B023 (called here)
                # ...the client has it and its next poll is on the way: nothing is held now
                result.gap.append(push(f"gap {n}"))
        finally:
            stop.set()
            server.hub.publish(cid, "stop")  # ends the last held poll
            poller.join(10)
    return result


# -- SSE through a proxy ------------------------------------------------------------------------


@dataclass
class PushDelay:
    """``connected``: seconds until the stream's first event arrived; ``push``: seconds from
    ``hub.publish`` to its arrival."""

    url: str
    connected: float
    push: float

    def __repr__(self) -> str:
        return (
            f"<connected event after {self.connected * 1000:,.1f} ms, "
            f"a push after {self.push * 1000:,.1f} ms>"
        )


def sse_push_delay(server: RunningServer, url: str, *, timeout: float = 30.0) -> PushDelay:
    """Open ``GET /sse`` at ``url`` (the server's own, or a proxy's in front of it), publish one
    message as soon as the ``connected`` event is read, and time its arrival."""
    started = time.monotonic()
    connected = published = 0.0
    parser = EventStreamParser()
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=timeout)) as client,
        client.stream("GET", f"{url}/sse") as response,
    ):
        for chunk in response.iter_bytes():
            for line in parser.feed(chunk):
                if line.kind != "field" or line.name != "data":
                    continue
                event = json.loads(line.value)
                if event["type"] == "connected":
                    connected = time.monotonic() - started
                    published = time.monotonic()
                    server.hub.publish(event["connection_id"], "how late am I?")
                elif event.get("message") == "how late am I?":
                    return PushDelay(url, connected, time.monotonic() - published)
            if time.monotonic() - started > timeout:
                break
    raise TimeoutError(f"no push arrived through {url} within {timeout} s")
