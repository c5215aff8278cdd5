"""Load and leaks: 10,000 connect/disconnect cycles per transport against a server in its own
process (its RSS is then its own), a slow consumer, and 500 clients x 100 messages."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from transport_demo.bench.h3_probe import WebTransportProbe
from transport_demo.clients import LongPollClient, SSEClient, WebSocketClient
from transport_demo.server.errors import QueueFull
from transport_demo.server.h3_endpoint import IDLE_TIMEOUT
from transport_demo.server.transports import TRANSPORTS, Carrier, info

from .figures import record

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CYCLES = 10_000
# A WebTransport cycle is a QUIC handshake (TLS 1.3 in aioquic's Python) at both ends: several
# milliseconds of CPU each side against a fraction of one for a TCP connection, so fewer cycles
# keep the test's time bounded (docs/benchmarks.md, "WebTransport beside WebSocket").
QUIC_CYCLES = 2_000
CONCURRENCY = 40


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def server_process(tmp_path: Any) -> Iterator[tuple[str, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transport_demo",
            "--port",
            str(port),
            "--poll-timeout",
            "0.2",
            "--resume-grace",
            "0.2",
            "--heartbeat-interval",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/stats")
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield url, process.pid
    process.terminate()
    process.wait(20)
    log.close()
    err = (tmp_path / "server.log").read_text()
    assert "Traceback" not in err and "ERROR" not in err, err[-2000:]


async def cycle(transport: str, url: str, http: httpx.AsyncClient) -> None:
    """Open one connection, see its `connected` event, and go away."""
    if transport == "long-polling":
        response = await http.post("/poll")
        assert response.json()["type"] == "connected"
    elif transport == "sse":
        async with http.stream("GET", "/sse") as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    assert json.loads(line[5:])["type"] == "connected"
                    break
    elif transport == "websocket":
        async with connect("ws" + url[4:] + "/ws", compression=None) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
    else:  # WebTransport: the benchmark's lean session (GET /webtransport once, then QUIC)
        probe = WebTransportProbe(int(url.rsplit(":", 1)[1]))
        try:
            await probe.open()  # returns once the `connected` line has come
            assert probe.push_to and probe.requests == 1
        finally:
            await probe.close()


async def run_cycles(transport: str, url: str, count: int) -> float:
    started = time.monotonic()
    todo = iter(range(count))
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def worker() -> None:
            for _ in todo:
                await cycle(transport, url, http)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.monotonic() - started


@pytest.mark.parametrize("transport", [t.value for t in TRANSPORTS])
async def test_connect_disconnect_cycles_leave_nothing_behind(
    server_process: tuple[str, int], transport: str
) -> None:
    url, pid = server_process
    cycles = CYCLES if info(transport).carrier is Carrier.TCP else QUIC_CYCLES
    # Warm up: allocator pools, imports, caches. QUIC's take longer to settle (aioquic's buffers
    # and TLS objects in pymalloc's arenas: +13 MB over the first 2,000 sessions, +5.5 MB over the
    # next 4,000, measured with the freeze on), so the slope is measured after as many sessions.
    await run_cycles(transport, url, 500 if info(transport).carrier is Carrier.TCP else cycles)
    await asyncio.sleep(1.0)
    baseline_rss, baseline = rss_kib(pid), httpx.get(f"{url}/stats").json()
    seconds = await run_cycles(transport, url, cycles)
    # A QUIC connection whose client's CONNECTION_CLOSE was lost (UDP, a loaded loopback) ends at
    # the server's idle timeout: the close is not resent (RFC 9000 §10.2.1).
    quiet = 10 if info(transport).carrier is Carrier.TCP else IDLE_TIMEOUT + 5
    deadline = time.monotonic() + quiet
    while (stats := httpx.get(f"{url}/stats").json())["total"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    grown_kib = rss_kib(pid) - baseline_rss
    assert stats["total"] == 0, stats["connections"]
    assert stats["connections_opened"] - baseline["connections_opened"] == cycles
    assert stats["asyncio_tasks"] <= baseline["asyncio_tasks"]
    assert grown_kib < 10 * 1024
    record(
        f"cycles.{transport}",
        cycles=cycles,
        seconds=round(seconds, 1),
        per_second=round(cycles / seconds),
        connections_left=stats["total"],
        asyncio_tasks_before_after=[baseline["asyncio_tasks"], stats["asyncio_tasks"]],
        rss_growth_kib=grown_kib,
    )


async def test_a_slow_consumer_cannot_grow_server_memory(make_server: Any) -> None:
    server = make_server(max_queue=1000, replay_window=1000)
    async with connect(f"{server.ws_url}/ws", max_size=None) as ws:
        cid = json.loads(await ws.recv())["connection_id"]
        # From now on the client reads nothing: socket buffers fill, then the hub's queue.
        accepted = refused = 0
        for _ in range(20_000):
            try:
                server.hub.publish(cid, "x" * 1000)
                accepted += 1
            except QueueFull:
                refused += 1
            if accepted % 500 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        conn = server.hub.connection(cid)
        assert conn.pending <= 1000 and len(conn.buffer) <= 1000 + 1000
        assert refused > 0
        # Another connection is not affected by the stuck one.
        async with connect(f"{server.ws_url}/ws") as other:
            other_id = json.loads(await other.recv())["connection_id"]
            server.hub.publish(other_id, "still fine")
            while (event := json.loads(await other.recv()))["type"] != "message":
                pass
            assert event["message"] == "still fine"
    record(
        "slow_consumer.websocket",
        attempted=20_000,
        accepted=accepted,
        refused_queue_full=refused,
        pending_at_most=conn.pending,
        kept_in_buffer=len(conn.buffer),
    )


async def test_500_clients_100_messages_each_exactly_once(make_server: Any) -> None:
    server = make_server(heartbeat_interval=5, poll_timeout=5, resume_grace=30)
    classes = [LongPollClient, SSEClient, WebSocketClient]
    clients = [
        classes[i % 3](server.url, backoff_initial=0.05, max_unread=1000) for i in range(500)
    ]
    started = time.monotonic()
    try:
        await asyncio.gather(*(c.start() for c in clients))
        ids = await asyncio.gather(*(c.wait_connected(timeout=60) for c in clients))
        assert len(set(ids)) == 500
        order = [(i, n) for n in range(100) for i in range(500)]
        random.Random(3).shuffle(order)  # interleaved, but in order per client
        per_client: dict[int, int] = dict.fromkeys(range(500), 0)
        for i, _ in order:
            server.hub.publish(ids[i], f"{i}:{per_client[i]}")
            per_client[i] += 1
            if sum(per_client.values()) % 1000 == 0:
                await asyncio.sleep(0)
        deadline = time.monotonic() + 120
        while any(c.last_seq < 100 for c in clients):
            assert time.monotonic() < deadline, "not all messages arrived"
            await asyncio.sleep(0.1)
        for i, client in enumerate(clients):
            got = [e["message"] for e in client.take_unread() if e["type"] == "message"]
            assert got == [f"{i}:{n}" for n in range(100)]
            assert client.stats.duplicates == 0 and client.stats.gaps == 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    record(
        "fan_out",
        clients=500,
        messages_each=100,
        seconds=round(time.monotonic() - started, 1),
        wrong_client=0,
        lost=0,
        duplicated=0,
    )
