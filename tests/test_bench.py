"""The benchmark at tiny sizes, so it can't rot: every target, every scenario, real servers in
their own processes. The figures themselves are not asserted (this machine is noisy); that every
measurement happened and adds up is."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from transport_demo.bench import OURS, TARGETS, Sizes, report
from transport_demo.bench.probes import Probe
from transport_demo.bench.run import over_quic

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "transport_demo.bench", "--quick", "--no-progress",
         "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md"),
         "--plots", str(out)],
        capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), out


def test_every_target_was_measured(quick_run: tuple[dict[str, Any], Path]) -> None:
    data, _ = quick_run
    sizes = Sizes.quick()
    assert set(data["latency"]) == set(TARGETS) == set(data["throughput"])
    assert set(data["thread"]) == set(OURS)
    for section in ("latency", "thread"):
        for target, figures in data[section].items():
            assert figures["push"]["count"] == sizes.messages, target
            assert figures["round_trip"]["count"] == sizes.round_trips, target
            assert 0 < figures["push"]["p50_ms"] <= figures["push"]["p99_ms"], target
    for target, figures in data["throughput"].items():
        assert figures["messages"] == sizes.burst and figures["messages_per_second"] > 0, target
        assert figures["bytes_per_message"] > 0, target
    # A stream makes no request per message; a poll answers a batch with one.
    assert data["throughput"]["ours sse"]["requests_per_message"] == 0
    assert 0 < data["throughput"]["ours long-polling"]["requests_per_message"] <= 1


def test_capacity_steps_opened_every_connection(quick_run: tuple[dict[str, Any], Path]) -> None:
    data, _ = quick_run
    assert set(data["capacity"]) == set(TARGETS)
    for target, steps in data["capacity"].items():
        assert [s["connections"] for s in steps] == list(Sizes.quick().steps), target
        assert all(s["failed"] == 0 and s["heartbeats"] > 0 for s in steps), target
        assert all(s["rss_mib"] > 0 for s in steps), target


def test_report_has_ratios_targets_tables_and_plots(quick_run: tuple[dict[str, Any], Path]) -> None:
    data, out = quick_run
    pairs = {(row["ours"], row["theirs"]) for row in data["ratios"]}
    assert ("ours websocket", "websockets") in pairs
    assert ("ours sse", "sse-starlette") in pairs
    assert ("ours long-polling", "socketio polling") in pairs
    assert all(c["met"] is None or isinstance(c["met"], bool) for c in data["checks"])
    # A quick run's capacity cannot judge a goal about 10,000 connections: it must say so.
    capacity_checks = [c for c in data["checks"] if "connections:" in c["target"]]
    assert capacity_checks and all(c["met"] is None for c in capacity_checks)
    assert len(data["checks"]) == len(report.checks(data))
    tables = (out / "bench.md").read_text()
    for heading in ("Latency", "Ratios", "Burst", "Idle connections", "Targets"):
        assert heading in tables
    assert "not judged at this size" in tables
    for name in ("latency", "throughput", "capacity"):
        assert (out / f"bench-{name}.svg").stat().st_size > 1000


def test_unknown_target_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "transport_demo.bench", "--targets", "ours carrier pigeon"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown target: ours carrier pigeon" in result.stderr


def test_heartbeat_lateness_is_measured_against_the_schedule() -> None:
    probe = Probe(port=1, heartbeat_s=1.0)
    second = 1_000_000_000
    # A stream: beats due every second; the 2nd came 30 ms late, the 3rd on time.
    for at in (6 * second, 7 * second + 30_000_000, 8 * second):
        probe.beat(at)
    assert probe.lags_since(0) == [0.0, 30.0, 0.0]
    assert probe.lags_since(2) == [0.0]
    # A poll: due one hold after it was sent.
    poll = Probe(port=1, heartbeat_s=1.0)
    poll.beat(3 * second + 5_000_000, due=3 * second)
    assert poll.lags_since(0) == [5.0]


def test_a_shaped_network_shows_in_every_figure() -> None:
    """Through 20 ms each way: pushes take one trip, round trips and echoes two, long polling's
    push waits for the next poll (its extra round trip), a reconnect costs a handshake and a
    request, and a cut loses or doubles nothing."""
    from transport_demo.bench import run
    from transport_demo.lab.network import Conditions

    sizes = replace(Sizes.quick(), messages=30, rate=50, cuts=2)
    data = run(
        sizes, scenarios=("latency", "reconnect"), targets=OURS, network=Conditions(delay_ms=20)
    ).as_dict()
    assert report.network_label(data) == "20 ms one way"
    latency, cuts = data["latency"], data["reconnect"]
    # WebTransport's datagrams go through the network's UDP half (GET /webtransport names the
    # relay's port): its push takes the same one trip.
    for target in ("ours sse", "ours websocket", "ours webtransport"):
        assert 20 <= latency[target]["push"]["p50_ms"] < 40, target
    assert latency["ours long-polling"]["push"]["p50_ms"] >= 40  # the poll's trip back first
    for target in OURS:
        assert latency[target]["round_trip"]["p50_ms"] >= 40, target
    # A relay's cut resets TCP connections; a QUIC connection cannot be reset from outside.
    assert set(cuts) == {t for t in OURS if not over_quic(t)} and cuts
    for target in cuts:
        assert cuts[target]["p50_ms"] >= 80, target  # a new TCP handshake, then the request
        assert cuts[target]["lost"] == cuts[target]["doubled"] == 0, target
    tables = report.network_table([data])
    assert "#### 20 ms one way" in tables and "cut → next message" in tables


def test_delay_option_reaches_the_run() -> None:
    from transport_demo.bench.__main__ import parse_args

    args = parse_args(["--delay-ms", "50", "--jitter-ms", "5", "--bandwidth-kbit", "2000"])
    assert (args.delay_ms, args.jitter_ms, args.bandwidth_kbit) == (50, 5, 2000)


def test_ours_on_redis_in_one_and_two_worker_processes(tmp_path: Path) -> None:
    """The Redis targets start a Redis for their run; with two workers both serve (the RSS counts
    every server process) and heartbeats still arrive; Redis's own memory is reported."""
    out = tmp_path / "bench.json"
    targets = "redis sse,redis-2 websocket,redis-2 long-polling"
    result = subprocess.run(
        [sys.executable, "-m", "transport_demo.bench", "--quick", "--no-progress",
         "--only", "latency,throughput,capacity", "--targets", targets, "--json", str(out)],
        capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["latency"]) == set(targets.split(",")) == set(data["capacity"])
    for target, figures in data["latency"].items():
        assert 0 < figures["push"]["p50_ms"] <= figures["push"]["p99_ms"], target
    for target, steps in data["capacity"].items():
        step = steps[-1]
        assert step["connections"] == Sizes.quick().steps[-1] and step["failed"] == 0, target
        assert step["heartbeats"] > 0 and step["silent"] == 0, target
        assert step["store_rss_mib"] > 0, target
    # Two workers and their supervisor are three processes: more resident memory than one.
    assert data["capacity"]["redis-2 websocket"][-1]["rss_mib"] > (
        1.5 * data["capacity"]["redis sse"][-1]["rss_mib"]
    )
    assert "Redis MiB" in result.stdout
