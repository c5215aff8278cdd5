"""WebTransport in the benchmark (``--only webtransport``) at tiny sizes, against a real server in
its own process serving our WebSocket over TCP and our WebTransport over UDP (HTTP/3, aioquic) on
the same port number, as the command line runs it. Figures are not asserted (the machine is
noisy); that each measurement happened over the protocol it is named for, and adds up, is."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from transport_demo.bench import Sizes
from transport_demo.bench.__main__ import parse_args
from transport_demo.bench.run import OURS, WEBTRANSPORT, WEBTRANSPORT_SCENARIOS, over_quic, plan

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture(scope="module")
def wt_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench-webtransport")
    result = subprocess.run(
        [sys.executable, "-m", "transport_demo.bench", "--only", "webtransport", "--quick",
         "--no-progress", "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md")],
        capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_both_transports_measured_in_every_scenario(wt_run: tuple[dict[str, Any], str]) -> None:
    data, _ = wt_run
    sizes = Sizes.quick()
    for section in WEBTRANSPORT_SCENARIOS:
        assert set(data[section]) == set(WEBTRANSPORT), section
    for target, figures in data["latency"].items():
        assert figures["push"]["count"] == sizes.messages, target
        assert figures["round_trip"]["count"] == sizes.round_trips, target
        assert 0 < figures["push"]["p50_ms"] <= figures["push"]["p99_ms"], target
        assert 0 < figures["round_trip"]["p50_ms"] <= figures["round_trip"]["p99_ms"], target
    for target, figures in data["throughput"].items():
        assert figures["messages"] == sizes.burst and figures["messages_per_second"] > 0, target
        assert figures["bytes_per_message"] > 0, target
        assert figures["requests_per_message"] == 0, target  # a stream: no request per message


def test_webtransport_went_over_http3_and_counted_its_own_packets(
    wt_run: tuple[dict[str, Any], str],
) -> None:
    data, _ = wt_run
    wire = data["wire"]
    assert wire["ours webtransport"]["protocol"] == "HTTP/3"
    assert wire["ours websocket"]["protocol"] == "websocket"
    for target in WEBTRANSPORT:
        assert wire[target]["events"] == Sizes.quick().counted, target  # every event arrived
        assert wire[target]["bytes_per_event"] > 0, target
    # A QUIC packet carries the event's JSON line uncompressed, plus its header, the AEAD tag
    # and the client's ACKs: more than the event's 64 characters.
    assert wire["ours webtransport"]["bytes_per_event"] > 64


def test_capacity_held_every_session_on_its_own_quic_connection(
    wt_run: tuple[dict[str, Any], str],
) -> None:
    data, _ = wt_run
    n = Sizes.quick().steps[-1]
    for target, steps in data["capacity"].items():
        step = steps[-1]
        assert step["connections"] == n and step["failed"] == 0, target
        assert step["silent"] == 0 and step["heartbeats"] > 0, target
        assert step["rss_mib"] > 0 and step["tcp_connections"] == n, target  # QUIC: one each
        assert step["grow_s"] > 0 and step["grow_client_cpu_s"] >= 0, target
        assert step["listen_server_cpu_pct"] >= 0 and step["udp_drops"] >= 0, target


def test_report_has_the_comparison(wt_run: tuple[dict[str, Any], str]) -> None:
    _, tables = wt_run
    for heading in ("### WebTransport beside WebSocket", "### One event at a time",
                    "where the CPU went"):  # fmt: skip
        assert heading in tables
    assert "| WebTransport |" in tables and "| WebSocket |" in tables
    assert "HTTP/3" in tables


def test_the_preset_and_the_scenarios_a_quic_target_skips() -> None:
    args = parse_args(["--only", "webtransport"])
    assert args.targets == WEBTRANSPORT and args.only == WEBTRANSPORT_SCENARIOS
    assert over_quic("ours webtransport") and not over_quic("ours websocket")
    # A relay's cut resets TCP connections only: no reconnect to time over QUIC.
    steps = plan(("reconnect", "latency"), (*OURS, "ours webtransport"), Sizes.quick())
    assert ("latency", "ours webtransport") in steps
    assert all(target != "ours webtransport" for scenario, target in steps if scenario != "latency")
