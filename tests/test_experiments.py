"""The classroom measurements and the fault proxy's delay and buffering modes: each shows what the
notebooks say it shows."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from transport_demo import RunningServer
from transport_demo.lab import experiments
from transport_demo.lab.proxy import FaultyProxy


def test_a_delaying_proxy_adds_a_round_trip_per_request(server: RunningServer) -> None:
    with FaultyProxy(server.port, delay=0.05) as proxy, httpx.Client(base_url=proxy.url) as http:
        http.get("/stats")  # the connection is open now: what follows is one request's round trip
        started = time.monotonic()
        assert http.get("/stats").status_code == 200
        assert time.monotonic() - started >= 0.1
    assert "adds 50 ms each way" in repr(proxy)


def test_idle_cost_short_polling_asks_more_often(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(poll_timeout=1.0)
    cost = asyncio.run(experiments.idle_cost(server.url, seconds=2.2, short_interval=0.25))
    short, long = cost.rows
    assert short.requests >= 6 and 1 <= long.requests <= 3
    assert short.per_minute(short.requests) > 2 * long.per_minute(long.requests)
    assert short.sent > long.sent and "requests/min" in repr(cost)


def test_the_gap_costs_more_than_a_held_poll(server: RunningServer) -> None:
    delay = 0.05
    result = experiments.gap_latency(server, delay=delay, rounds=3)
    held, gap = statistics.median(result.held), statistics.median(result.gap)
    assert delay * 0.9 <= held < delay * 2  # the answer's one way
    assert gap > held + delay / 2  # plus the next poll's way to the server (one more delay)
    assert "between an answer and the next" in repr(result)


def test_a_buffering_proxy_delays_a_push_unless_it_honours_the_header(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(heartbeat_interval=0.1, resume_grace=5)
    direct = experiments.sse_push_delay(server, server.url)
    delays: dict[bool, Any] = {}
    for honour in (False, True):
        with FaultyProxy(server.port, buffer_bytes=1024, honour_accel_buffering=honour) as proxy:
            delays[honour] = experiments.sse_push_delay(server, proxy.url)
    assert direct.push < 0.1 and delays[True].push < 0.1
    assert delays[False].push > 0.3  # held until heartbeats fill the buffer
    assert delays[False].connected > 0.3  # the connected event too
