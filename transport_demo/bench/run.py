"""One benchmark run: every scenario against every target, in one process tree, one at a time
(two at once would share the two cores and measure each other)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import platform
import statistics
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from typing import Any

from ..lab.network import Conditions, Network
from ..server.transports import TRANSPORTS, Carrier, info
from .capacity import capacity
from .probes import ON_REDIS, ON_TLS, OURS, PROBES
from .reconnect import reconnect_cost
from .scenarios import burst, push_latency, round_trip, wire
from .targets import ServerProcess, ThreadServer

__all__ = [
    "ALL_SCENARIOS",
    "ALL_TARGETS",
    "HTTP2",
    "HTTP2_SCENARIOS",
    "OURS",
    "SCENARIOS",
    "TARGETS",
    "WEBTRANSPORT",
    "WEBTRANSPORT_SCENARIOS",
    "Results",
    "Sizes",
    "plan",
    "run",
]

ALL_TARGETS = tuple(PROBES)
TARGETS = tuple(t for t in PROBES if t not in ON_REDIS + ON_TLS)  # the default run
SCENARIOS = ("latency", "thread", "throughput", "reconnect", "capacity")
ALL_SCENARIOS = (*SCENARIOS, "wire")  # wire: bytes of one event at a time (not in the default)
HTTP2 = tuple(f"{how} {t.value}" for t, row in TRANSPORTS.items() for how in ("ours", "tls", "h2")
              if f"{how} {t.value}" in PROBES and row.carrier is Carrier.TCP)  # fmt: skip
"""``--only http2``: each transport over TCP on plain HTTP/1.1 (uvicorn), HTTP/1.1 over TLS and
HTTP/2 (hypercorn, as ``start_server(https=True)`` serves it); the WebSocket without an HTTP/2
row. WebTransport is HTTP/3, over QUIC: ``--only webtransport`` compares it."""
HTTP2_SCENARIOS = ("latency", "throughput", "wire", "capacity")
WEBTRANSPORT = ("ours websocket", "ours webtransport")
"""``--only webtransport``: our WebTransport (HTTP/3 over QUIC, aioquic) beside our WebSocket, the
transport it mirrors, from one server process serving both (issue 24)."""
WEBTRANSPORT_SCENARIOS = ("latency", "throughput", "wire", "capacity")
SHAPED = ("latency", "thread", "throughput", "reconnect")  # what runs through a network


@dataclass(frozen=True)
class Sizes:
    """How much of everything. ``Sizes()`` is the full run (about 15 minutes here)."""

    messages: int = 2000  # pushed at `rate` per second, each timed
    rate: float = 500.0
    round_trips: int = 1000
    burst: int = 10_000
    counted: int = 1000  # messages sent through the counting relay
    steps: tuple[int, ...] = (1000, 2000, 5000, 10_000)
    heartbeat: float = 5.0  # seconds; also the long-poll hold in the capacity run
    # Seconds over which a capacity step opens its connections: None is one heartbeat interval (a
    # class arriving); a few seconds for everything at once is a thundering herd.
    arrival: float | None = None
    capacity_workers: int = 2
    warmup: int = 50
    rounds: int = 3  # latency rounds; the median of each figure is reported
    cuts: int = 5  # reconnects timed per transport

    @classmethod
    def quick(cls) -> Sizes:
        """Seconds, not minutes: the suite's smoke test."""
        return cls(
            messages=40, rate=400, round_trips=20, burst=300, counted=60, steps=(20,),
            heartbeat=0.5, capacity_workers=1, warmup=5, rounds=1, cuts=2,
        )  # fmt: skip

    @classmethod
    def notebook(cls) -> Sizes:
        """The comparison notebook's run: class size, well under a minute."""
        return replace(cls.quick(), messages=200, rate=500, round_trips=50, burst=1000,
                       counted=200, warmup=20)  # fmt: skip

    @classmethod
    def network(cls) -> Sizes:
        """The comparison notebook's runs through a slow network: few round trips (each costs
        the network's round-trip time), a short burst; seconds per network."""
        return replace(cls.quick(), messages=40, rate=100, round_trips=6, burst=300,
                       counted=60, warmup=2, cuts=2)  # fmt: skip


@dataclass
class Results:
    sizes: Sizes
    machine: dict[str, Any]
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    thread: dict[str, dict[str, Any]] = field(default_factory=dict)
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    capacity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reconnect: dict[str, dict[str, Any]] = field(default_factory=dict)
    wire: dict[str, dict[str, Any]] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=lambda: asdict(Conditions()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("fastapi", "uvicorn", "websockets", "python-socketio", "sse-starlette",
                    "hypercorn", "h2"):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def over_quic(target: str) -> bool:
    """Whether ``target``'s packets are QUIC (UDP). The shaped network relays them (its UDP half,
    ``lab/udp_relay.py``), but its cut resets TCP connections only: a relay cannot reset a QUIC
    connection (that takes its keys), so the reconnect scenario has nothing to time for them."""
    return info(PROBES[target][1].transport).carrier is Carrier.QUIC


def plan(
    scenarios: tuple[str, ...], targets: tuple[str, ...], sizes: Sizes
) -> list[tuple[str, str]]:
    """The (scenario, target) pairs a run goes through, in order."""
    steps = []
    for scenario in scenarios:
        chosen = [t for t in targets if scenario not in ("thread", "reconnect") or t in OURS]
        if scenario == "reconnect":  # a relay's cut resets TCP only (over_quic)
            chosen = [t for t in chosen if not over_quic(t)]
        steps += [(scenario, target) for target in chosen]
    return steps


def _by_family(targets: list[str]) -> Iterator[tuple[str, list[str]]]:
    families: dict[str, list[str]] = {}
    for target in targets:
        families.setdefault(PROBES[target][0], []).append(target)
    yield from families.items()


@contextlib.contextmanager
def _through(server: Any, conditions: Conditions | None) -> Iterator[int]:
    """The port a probe should use: the server's, or a shaped network's in front of it."""
    if conditions is None:
        yield server.port
        return
    with Network(server.port, conditions) as net:
        yield net.port


async def _latencies(server: Any, target: str, sizes: Sizes, port: int) -> dict[str, Any]:
    probe = PROBES[target][1]
    push = await push_latency(
        probe(port), server, n=sizes.messages, rate=sizes.rate, warmup=sizes.warmup
    )
    trip = await round_trip(probe(port), n=sizes.round_trips, warmup=sizes.warmup)
    return {"push": asdict(push), "round_trip": asdict(trip)}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each latency figure's median over the rounds (``count`` is per round)."""
    merged: dict[str, Any] = {}
    for part in ("push", "round_trip"):
        first = runs[0][part]
        merged[part] = {
            key: first[key]
            if key == "count"
            else round(statistics.median(r[part][key] for r in runs), 3)
            for key in first
        }
        merged[part]["rounds"] = len(runs)
    return merged


def run(
    sizes: Sizes | None = None,
    *,
    scenarios: tuple[str, ...] = SCENARIOS,
    targets: tuple[str, ...] = TARGETS,
    progress: Callable[[str, Results], None] | None = None,
    network: Conditions | None = None,
) -> Results:
    """Run the benchmark; ``progress(label, results_so_far)`` is called after each (scenario,
    target) step.

    With ``network`` the clients reach each server through a shaped
    :class:`~transport_demo.lab.network.Network` (delay, jitter, bandwidth) for the latency,
    thread, throughput and reconnect scenarios; the server is still told to push directly, so a
    push's latency is one trip down the network. Capacity always runs on loopback.

    Call from a thread without a running event loop (a notebook: ``await
    asyncio.to_thread(run, ...)``).
    """
    sizes = sizes or Sizes()
    results = Results(sizes=sizes, machine=machine())
    if network is not None:
        results.network = asdict(network)

    def done(label: str) -> None:
        if progress is not None:
            progress(label, results)

    chosen = [t for t in ALL_TARGETS if t in targets]

    # Latency is measured in `rounds` interleaved rounds, every server started afresh in each,
    # and reported as the median per figure: one round's p50 moves by a tenth of a millisecond
    # with whatever else the machine is doing, which is the size of the differences measured.
    rounds: dict[str, list[dict[str, Any]]] = {}
    if {"latency", "throughput", "wire"} & set(scenarios):
        for round_ in range(sizes.rounds):
            last = round_ == sizes.rounds - 1
            for family, members in _by_family(chosen):
                with (
                    ServerProcess(family, sizes.heartbeat) as server,
                    _through(server, network) as port,
                ):
                    for target in members:
                        if "latency" in scenarios:
                            runs = rounds.setdefault(target, [])
                            runs.append(asyncio.run(_latencies(server, target, sizes, port)))
                            if last:
                                results.latency[target] = _median(runs)
                                done(f"latency {target}")
                        if "throughput" in scenarios and round_ == 0:
                            measured = asyncio.run(
                                burst(
                                    PROBES[target][1],
                                    server,
                                    n=sizes.burst,
                                    counted=sizes.counted,
                                    port=port,
                                )
                            )
                            results.throughput[target] = asdict(measured)
                            done(f"throughput {target}")
                        if "wire" in scenarios and round_ == 0:
                            counted = asyncio.run(
                                wire(
                                    PROBES[target][1],
                                    server,
                                    n=sizes.counted,
                                    rate=sizes.rate / 5,  # one at a time, even for a poll
                                    port=port,
                                )
                            )
                            results.wire[target] = asdict(counted)
                            done(f"wire {target}")
    if "thread" in scenarios:
        for round_ in range(sizes.rounds):
            for target in (t for t in chosen if t in OURS):
                runs = rounds.setdefault(f"thread {target}", [])
                with (
                    ThreadServer(sizes.heartbeat) as threaded,
                    _through(threaded, network) as port,
                ):
                    runs.append(asyncio.run(_latencies(threaded, target, sizes, port)))
                if round_ == sizes.rounds - 1:
                    results.thread[target] = _median(runs)
                    done(f"thread {target}")
    if "reconnect" in scenarios and any(t in OURS and not over_quic(t) for t in chosen):
        with (
            ServerProcess("ours", sizes.heartbeat) as server,
            Network(server.port, network or Conditions()) as net,
        ):
            for target in (t for t in chosen if t in OURS and not over_quic(t)):
                transport = target.removeprefix("ours ")
                cost = asyncio.run(reconnect_cost(transport, server, net, cuts=sizes.cuts))
                results.reconnect[target] = asdict(cost)
                done(f"reconnect {target}")
    if "capacity" in scenarios:
        for target in chosen:
            steps = capacity(
                target,
                list(sizes.steps),
                heartbeat=sizes.heartbeat,
                workers=sizes.capacity_workers,
                arrival=sizes.arrival,
            )
            results.capacity[target] = [asdict(step) for step in steps]
            done(f"capacity {target}")
    return results
