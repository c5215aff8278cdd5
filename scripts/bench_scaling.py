"""What Redis costs, measured small: push latency, round trip and a burst, in memory vs on Redis;
round trips per second with one and two worker processes on Redis.

    .venv/bin/python scripts/bench_scaling.py [--pushes 300] [--burst 2000] [--seconds 3]

Prints a markdown table (docs/benchmarks.md, "Scaling out on Redis"). Everything runs on this
machine: the server(s), Redis and the clients share its cores, so the figures are an upper bound on
what Redis costs per message, not a capacity claim.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from transport_demo import RunningServer, start_server
from transport_demo.lab.local_redis import start_redis


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def push_latency(server: RunningServer, n: int) -> list[float]:
    """Publish from another thread (as a notebook does), one at a time; time to the client."""
    async with websockets.connect(server.ws_url + "/ws", compression=None) as ws:
        cid = json.loads(await ws.recv())["connection_id"]
        took = []
        for _ in range(n):
            started = time.perf_counter()
            await asyncio.to_thread(server.hub.publish, cid, "x")
            while json.loads(await ws.recv())["type"] != "message":
                pass
            took.append(time.perf_counter() - started)
        return took


async def round_trips(ws_url: str, n: int) -> list[float]:
    """A client's text and its echo, one at a time."""
    async with websockets.connect(ws_url + "/ws", compression=None) as ws:
        await ws.recv()
        took = []
        for _ in range(n):
            started = time.perf_counter()
            await ws.send('{"message":"x"}')
            while json.loads(await ws.recv())["type"] != "user_message":
                pass
            took.append(time.perf_counter() - started)
        return took


async def burst(server: RunningServer, n: int) -> float:
    """``n`` publishes as fast as one thread can make them; events per second delivered."""
    async with websockets.connect(server.ws_url + "/ws", compression=None) as ws:
        cid = json.loads(await ws.recv())["connection_id"]
        started = time.perf_counter()
        threading.Thread(
            target=lambda: [server.hub.publish(cid, "x") for _ in range(n)], daemon=True
        ).start()
        got = 0
        while got < n:
            if json.loads(await ws.recv())["type"] == "message":
                got += 1
        return n / (time.perf_counter() - started)


async def throughput(ws_url: str, clients: int, seconds: float) -> float:
    """``clients`` sockets each doing round trips for ``seconds``: round trips per second."""
    done = 0

    async def one() -> None:
        nonlocal done
        async with websockets.connect(ws_url + "/ws", compression=None) as ws:
            await ws.recv()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                await ws.send('{"message":"x"}')
                while json.loads(await ws.recv())["type"] != "user_message":
                    pass
                done += 1

    await asyncio.gather(*(one() for _ in range(clients)))
    return done / seconds


def workers(redis_url: str, count: int) -> tuple[subprocess.Popen[bytes], str, Any]:
    log = tempfile.NamedTemporaryFile(suffix=".log")  # noqa: SIM115
    command = [sys.executable, "-m", "transport_demo", "--port", "0", "--redis", redis_url]
    command += ["--workers", str(count)] if count > 1 else []
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", Path(log.name).read_text())
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            try:
                stats = httpx.get(url + "/stats", timeout=2).json()
                if count == 1 or len(stats["processes"]) >= count:
                    return process, "ws" + url[4:], log
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError("the server did not start")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    store = start_redis()
    rows = []
    try:
        options: dict[str, Any] = {"max_queue": args.burst * 2, "ws_compression": False}
        for name, redis_url in (("memory", None), ("redis", store.url)):
            server = start_server(port=0, redis_url=redis_url, **options)
            try:
                push = asyncio.run(push_latency(server, args.pushes))
                trip = asyncio.run(round_trips(server.ws_url, args.pushes))
                rate = asyncio.run(burst(server, args.burst))
            finally:
                server.stop()
            rows.append(
                f"| {name} | {ms(statistics.median(push))} | {ms(pct(push, 0.99))} "
                f"| {ms(statistics.median(trip))} | {ms(pct(trip, 0.99))} | {rate:,.0f} |"
            )
        print(
            "| hub | push p50 (ms) | push p99 (ms) | round trip p50 (ms) | round trip p99 (ms) "
            f"| burst of {args.burst} (events/s) |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        print()
        print(f"| Redis, worker processes | round trips/s, {args.clients} WebSocket clients |")
        print("|---|---|")
        for count in (1, 2):
            process, ws_url, log = workers(store.url, count)
            try:
                rate = asyncio.run(throughput(ws_url, args.clients, args.seconds))
            finally:
                process.terminate()
                process.wait(10)
                log.close()
            print(f"| {count} | {rate:,.0f} |")
    finally:
        store.close()


if __name__ == "__main__":
    main()
