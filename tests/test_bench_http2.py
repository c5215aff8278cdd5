"""The HTTP/2 comparison of the benchmark (``--only http2``) at tiny sizes, against real servers in
their own processes: plain HTTP/1.1 (uvicorn), HTTP/1.1 over TLS and HTTP/2 (hypercorn). Figures
are not asserted (the machine is noisy); that every measurement happened, that each target spoke
the HTTP version it is named for, and that HTTP/2 multiplexed, are."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from transport_demo.bench import Sizes
from transport_demo.bench.http_clients import RawH2
from transport_demo.bench.run import HTTP2

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture(scope="module")
def http2_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench-http2")
    result = subprocess.run(
        [sys.executable, "-m", "transport_demo.bench", "--only", "http2", "--quick",
         "--no-progress", "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md")],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_every_target_measured_in_every_scenario(http2_run: tuple[dict[str, Any], str]) -> None:
    data, _ = http2_run
    sizes = Sizes.quick()
    assert {"tls sse", "h2 sse", "tls long-polling", "h2 long-polling"} <= set(HTTP2)
    for section in ("latency", "throughput", "wire", "capacity"):
        assert set(data[section]) == set(HTTP2), section
    for target, figures in data["latency"].items():
        assert figures["push"]["count"] == sizes.messages, target
        assert figures["round_trip"]["count"] == sizes.round_trips, target
        assert 0 < figures["push"]["p50_ms"] <= figures["push"]["p99_ms"], target
    for target, figures in data["throughput"].items():
        assert figures["messages"] == sizes.burst and figures["bytes_per_message"] > 0, target


def test_each_target_spoke_its_version_and_counted_its_bytes(
    http2_run: tuple[dict[str, Any], str],
) -> None:
    data, _ = http2_run
    for target, wire in data["wire"].items():
        how, transport = target.split(" ", 1)
        expected = (
            "websocket" if transport == "websocket" else {"h2": "HTTP/2"}.get(how, "HTTP/1.1")
        )
        assert wire["protocol"] == expected, target  # ALPN gave what the target is named for
        assert wire["events"] == Sizes.quick().counted, target  # every event arrived
        assert wire["bytes_per_event"] > 0, target
        if transport != "websocket":
            assert wire["http_bytes_per_event"] > 0, target
        if how != "ours" and transport != "websocket":
            # TLS records (header, tag) come on top of what HTTP wrote.
            assert wire["bytes_per_event"] > wire["http_bytes_per_event"], target
    for how in ("ours", "tls", "h2"):
        poll = data["wire"][f"{how} long-polling"]
        assert 0.5 <= poll["requests_per_event"] <= 1.5, how  # one poll per event, about
        assert poll["bytes_per_request"] > 0, how


def test_http2_multiplexes_the_capacity_run(http2_run: tuple[dict[str, Any], str]) -> None:
    data, _ = http2_run
    n = Sizes.quick().steps[-1]
    for target, steps in data["capacity"].items():
        step = steps[-1]
        assert step["connections"] == n and step["failed"] == 0, target
        assert step["heartbeats"] > 0 and step["rss_mib"] > 0, target
        if target.startswith("h2 "):
            assert step["tcp_connections"] == 1, target  # every stream on one connection
        else:
            assert step["tcp_connections"] == n, target


def test_report_has_the_comparison(http2_run: tuple[dict[str, Any], str]) -> None:
    _, tables = http2_run
    for heading in ("### HTTP/2 beside HTTP/1.1", "### One event at a time", "TCP"):
        assert heading in tables
    for label in ("HTTP/1.1 (uvicorn)", "HTTP/1.1 + TLS (hypercorn)", "HTTP/2 + TLS (hypercorn)"):
        assert label in tables


def test_h2_clients_share_a_connection_up_to_the_stream_limit() -> None:
    """No socket is opened here: the pool only assigns clients to connections."""

    async def assign() -> None:
        clients = [RawH2(1) for _ in range(RawH2.per_connection + 1)]
        first = clients[0]._link
        assert all(c._link is first for c in clients[:-1])
        assert clients[-1]._link is not first  # the 101st stream needs a second connection
        for client in clients:
            client.close()
        assert first.closed and first.users == 0

    asyncio.run(assign())
