"""Capacity: many idle connections with heartbeats on. The server runs in its own process; the
connections are spread over a few client processes (one asyncio loop each) so that the clients'
own work does not become the figure. Each step grows to N connections, then listens for a
window: the server's RSS per connection and the heartbeats' lateness (p99) at N."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .probes import PROBES, Probe
from .scenarios import percentile
from .system import cpu_seconds, raise_fd_limit, rss_kib, udp_receive_drops
from .targets import ServerProcess

__all__ = ["CapacityStep", "capacity"]

OPEN_CONCURRENCY = 64  # handshakes in flight per client process
OPEN_TIMEOUT = 30.0  # seconds a step may take beyond its spread; later opens count as failed
SATURATED_LAG_MS = 5000.0  # a step this late (or with 1 % lost) ends the target's run


@dataclass
class CapacityStep:
    requested: int
    connections: int
    failed: int  # opens that failed or did not finish in time
    silent: int  # open connections that got no heartbeat in the window (dropped or starved)
    rss_mib: float
    rss_per_connection_kib: float
    heartbeats: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    server_gc_max_ms: float  # the longest full garbage collection in the server meanwhile
    # TCP connections under the `connections` (fewer over HTTP/2: many streams share one); for
    # WebTransport, QUIC connections (one per session here).
    tcp_connections: int = 0
    # On Redis: its resident memory, and per connection (the server's own is in rss_*: with
    # worker processes, the sum over them all).
    store_rss_mib: float = 0.0
    store_per_connection_kib: float = 0.0
    # UDP datagrams the kernel dropped for a full receive buffer from the step's start to the
    # end of its listening window (machine-wide: the QUIC server's socket, or a client's).
    udp_drops: int = 0
    # Where the time went, to tell a server that cannot keep up from clients that cannot: the
    # growth phase's wall time and the CPU seconds the server's processes and the client
    # processes used in it (2 cores: their sum cannot pass twice the wall time), and each side's
    # CPU share of one core while the connections idled (the listening window).
    grow_s: float = 0.0
    grow_server_cpu_s: float = 0.0
    grow_client_cpu_s: float = 0.0
    listen_server_cpu_pct: float = 0.0
    listen_client_cpu_pct: float = 0.0


async def _worker_main(pipe: Connection, target: str, port: int, heartbeat: float) -> None:
    probe_type = PROBES[target][1]
    probes: list[Probe] = []
    receivers: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    while True:
        command, value = await loop.run_in_executor(None, pipe.recv)
        if command == "grow":
            count, spread = value
            limit = asyncio.Semaphore(OPEN_CONCURRENCY)
            failed = 0

            async def open_one(limit: asyncio.Semaphore = limit) -> None:
                nonlocal failed
                probe = probe_type(port, heartbeat)
                async with limit:
                    try:
                        await asyncio.wait_for(probe.open(), 30)
                    except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError):
                        failed += 1
                        return
                probes.append(probe)
                receivers.append(asyncio.create_task(probe.receive()))

            # Spread over `spread` seconds, as a class arrives: connections opened in the same
            # instant would have their heartbeats due in the same instant, for ever.
            opening = []
            started = loop.time()
            new = count - len(probes)
            for i in range(new):
                await asyncio.sleep(max(0.0, started + i * spread / new - loop.time()))
                opening.append(asyncio.create_task(open_one()))
            if opening:
                _, late = await asyncio.wait(opening, timeout=OPEN_TIMEOUT)
                for task in late:  # a server this far behind is saturated: stop waiting
                    task.cancel()
                failed += len(late)
            # The connections are long-lived: out of the collector's way, so that a full
            # collection over thousands of them does not stall this client and pass for lag.
            gc.collect()
            gc.freeze()
            links = set().union(*(probe.links() for probe in probes))
            pipe.send((len(probes), failed, len(links), time.process_time()))
        elif command == "cpu":  # this process's CPU seconds so far
            pipe.send(time.process_time())
        elif command == "listen":
            marks = [probe.beats for probe in probes]
            await asyncio.sleep(value)
            lags = [
                lag
                for probe, mark in zip(probes, marks, strict=True)
                for lag in probe.lags_since(mark)
            ]
            silent = sum(probe.beats == mark for probe, mark in zip(probes, marks, strict=True))
            pipe.send((lags, silent, time.process_time()))
        else:
            for task in receivers:
                task.cancel()
            await asyncio.gather(*(probe.close() for probe in probes), return_exceptions=True)
            pipe.send(None)
            return


def _worker(pipe: Connection, target: str, port: int, heartbeat: float) -> None:
    raise_fd_limit()
    asyncio.run(_worker_main(pipe, target, port, heartbeat))


@contextlib.contextmanager
def _workers(target: str, port: int, heartbeat: float, count: int) -> Iterator[list[Connection]]:
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    for _ in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, target, port, heartbeat))
        process.start()
        pipes.append(ours)
        processes.append(process)
    try:
        yield pipes
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close", None))
        for pipe in pipes:
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(30):
                    pipe.recv()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def _rss(pids: list[int]) -> int:
    """Resident memory of these processes together, KiB."""
    return sum(rss_kib(pid) for pid in pids)


def server_gc(server: ServerProcess) -> dict[str, float]:
    """The server's full garbage collections since the last call (``/bench/gc``)."""
    url = f"{server.scheme}://127.0.0.1:{server.port}/bench/gc"
    with urllib.request.urlopen(url, timeout=30, context=server.tls) as answer:
        figures: dict[str, float] = json.loads(answer.read())
        return figures


def _cpu(pids: list[int]) -> float:
    """CPU seconds of these processes together."""
    return sum(cpu_seconds(pid) for pid in pids)


def _ask(pipes: list[Connection], command: str, values: list[Any]) -> list[Any]:
    for pipe, value in zip(pipes, values, strict=True):
        pipe.send((command, value))
    return [pipe.recv() for pipe in pipes]


def capacity(
    target: str,
    steps: list[int],
    *,
    heartbeat: float = 5.0,
    listen: float | None = None,
    workers: int = 2,
    arrival: float | None = None,
    on_start: Callable[[ServerProcess], None] | None = None,
) -> list[CapacityStep]:
    """Grow to each N in ``steps`` and listen ``listen`` seconds (default 2.2 heartbeats).
    Each step opens its new connections spread over ``arrival`` seconds (default one heartbeat
    interval; a few seconds is a thundering herd, as after a restart).
    Stops early when a step is saturated (over 1 % of the connections failed or silent, or
    heartbeats ``SATURATED_LAG_MS`` late).

    ``on_start(server)`` runs in a thread once the server is up (the profiler attaches there).
    """
    listen = listen if listen is not None else 2.2 * heartbeat
    results = []
    with (
        ServerProcess(PROBES[target][0], heartbeat) as server,
        _workers(target, server.port, heartbeat, workers) as pipes,
    ):
        if on_start is not None:
            threading.Thread(target=on_start, args=(server,), daemon=True).start()
        time.sleep(0.5)
        baseline_kib = _rss(server.pids)
        store_pids = [server.store.process.pid] if server.store and server.store.process else []
        store_baseline_kib = _rss(store_pids)
        for n in steps:
            shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
            spread = heartbeat if arrival is None else arrival
            drops_before = udp_receive_drops()
            client_cpu = sum(_ask(pipes, "cpu", [None] * workers))
            started, server_cpu = time.monotonic(), _cpu(server.pids)
            grown = _ask(pipes, "grow", [(share, spread) for share in shares])
            grow_s, grow_server_cpu = time.monotonic() - started, _cpu(server.pids) - server_cpu
            opened = sum(count for count, _, _, _ in grown)
            failed = sum(failures for _, failures, _, _ in grown)
            client_cpu = sum(cpu for _, _, _, cpu in grown) - client_cpu
            time.sleep(min(1.0, heartbeat / 2))  # the last handshakes settle
            rss = _rss(server.pids)
            store_rss = _rss(store_pids)
            server_gc(server)  # from now on
            listen_started, server_cpu = time.monotonic(), _cpu(server.pids)
            listen_client_cpu = sum(_ask(pipes, "cpu", [None] * workers))
            heard = _ask(pipes, "listen", [listen] * workers)
            listened = time.monotonic() - listen_started
            listen_server_cpu = _cpu(server.pids) - server_cpu
            listen_client_cpu = sum(cpu for *_, cpu in heard) - listen_client_cpu
            gc_figures = server_gc(server)
            lags = [lag for part, _, _ in heard for lag in part]
            silent = sum(count for _, count, _ in heard)
            results.append(
                CapacityStep(
                    requested=n,
                    connections=opened,
                    failed=failed,
                    silent=silent,
                    rss_mib=round(rss / 1024, 1),
                    rss_per_connection_kib=round((rss - baseline_kib) / max(opened, 1), 2),
                    heartbeats=len(lags),
                    lag_p50_ms=round(percentile(lags, 50), 1),
                    lag_p99_ms=round(percentile(lags, 99), 1),
                    lag_max_ms=round(max(lags, default=0.0), 1),
                    server_gc_max_ms=gc_figures["max_ms"],
                    tcp_connections=sum(links for _, _, links, _ in grown),
                    store_rss_mib=round(store_rss / 1024, 1),
                    store_per_connection_kib=round(
                        (store_rss - store_baseline_kib) / max(opened, 1), 2
                    ),
                    udp_drops=udp_receive_drops() - drops_before,
                    grow_s=round(grow_s, 1),
                    grow_server_cpu_s=round(grow_server_cpu, 1),
                    grow_client_cpu_s=round(client_cpu, 1),
                    listen_server_cpu_pct=round(100 * listen_server_cpu / listened, 1),
                    listen_client_cpu_pct=round(100 * listen_client_cpu / listened, 1),
                )
            )
            if failed + silent > n / 100 or results[-1].lag_p99_ms > SATURATED_LAG_MS:
                break  # saturated: larger steps would only take longer to say so
    return results
