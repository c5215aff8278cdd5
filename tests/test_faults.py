"""Fault injection: a client receives a steady stream of pushes while a proxy cuts its connection
100+ times at random moments (client side, server side, both, mid-response), stalls it, or buffers
it. Figures go to artifacts/reliability.json for docs/reliability.md."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from transport_demo import RunningServer
from transport_demo.clients import CLIENTS as REGISTERED
from transport_demo.clients import BaseClient, LongPollClient, SSEClient, WebSocketClient
from transport_demo.lab.proxy import FaultyProxy
from transport_demo.server.errors import QueueFull
from transport_demo.server.transports import Carrier, info

from .figures import record

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# The faulty proxy relays TCP: it cuts, stalls and buffers the clients whose carrier is TCP.
CLIENTS = [cls for cls in REGISTERED.values() if info(cls.transport).carrier is Carrier.TCP]
QUIC_CLIENTS = [cls for cls in REGISTERED.values() if info(cls.transport).carrier is Carrier.QUIC]


@pytest.fixture
def proxy(server: RunningServer) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(server.port)
    yield proxy
    proxy.close()


def fast_client(cls: type[BaseClient], url: str, **options: Any) -> BaseClient:
    options = {"backoff_initial": 0.01, "backoff_max": 0.1, **options}
    if cls is SSEClient:
        options.setdefault("heartbeat_timeout", 2.0)
    return cls(url, **options)


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def received_messages(client: BaseClient) -> list[tuple[int, str]]:
    return [(e["seq"], e["message"]) for e in client.take_unread() if e["type"] == "message"]


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_a_hundred_random_cuts_lose_nothing(
    server: RunningServer, proxy: FaultyProxy, cls: type[BaseClient]
) -> None:
    rng = random.Random(7)
    client = fast_client(cls, proxy.url)
    async with client:
        cid = await client.wait_connected()
        sent: dict[int, str] = {}
        stop = asyncio.Event()
        refused = 0

        async def publisher() -> None:
            nonlocal refused
            i = 0
            while not stop.is_set():
                text = f"m{i}-{rng.random():.6f}"
                try:
                    sent[server.hub.publish(cid, text)] = text
                    i += 1
                except QueueFull:
                    refused += 1  # backpressure while the client is away: try again shortly
                await asyncio.sleep(0.004)

        started = time.monotonic()
        task = asyncio.create_task(publisher())
        kinds = {"client": 0, "server": 0, "both": 0, "mid": 0}
        while proxy.cuts < 100:
            await asyncio.sleep(rng.uniform(0.02, 0.09))
            kind = rng.choice(list(kinds))
            hit = proxy.cut_mid_response() if kind == "mid" else proxy.cut(kind)
            kinds[kind] += 1 if hit else 0
            assert time.monotonic() - started < 120
        stop.set()
        await task
        await wait_for(lambda: client.last_seq == len(sent), timeout=30)
        got = received_messages(client)
        seconds = time.monotonic() - started
    assert [seq for seq, _ in got] == list(range(1, len(sent) + 1))  # none lost, none twice
    assert dict(got) == sent  # and each with its own text
    assert client.stats.gaps == 0
    record(
        f"faults.{cls.transport}",
        cuts=proxy.cuts,
        cut_kinds=kinds,
        messages=len(sent),
        lost=0,
        duplicated=0,
        reordered=0,
        duplicates_dropped_by_client=client.stats.duplicates,
        reconnects=client.stats.reconnects,
        refused_while_away_then_retried=refused,
        seconds=round(seconds, 1),
    )


@pytest.mark.parametrize("cls", QUIC_CLIENTS, ids=lambda c: c.transport)
async def test_a_hundred_random_quic_cuts_lose_nothing(
    server: RunningServer, cls: type[BaseClient]
) -> None:
    """The same exactly-once check for a client over QUIC, which the TCP proxy cannot relay: the
    client drops its connection, or the server cuts the session, at random moments."""
    rng = random.Random(7)
    client = fast_client(cls, server.url)
    async with client:
        cid = await client.wait_connected()
        sent: dict[int, str] = {}
        stop = asyncio.Event()

        async def publisher() -> None:
            i = 0
            while not stop.is_set():
                text = f"m{i}-{rng.random():.6f}"
                with contextlib.suppress(QueueFull):
                    sent[server.hub.publish(cid, text)] = text
                    i += 1
                await asyncio.sleep(0.004)

        started = time.monotonic()
        task = asyncio.create_task(publisher())
        kinds = {"client": 0, "server": 0}
        for _ in range(100):
            await asyncio.sleep(rng.uniform(0.02, 0.09))
            kind = rng.choice(list(kinds))
            if kind == "client":
                await client.drop_connection()
                kinds[kind] += 1
            elif await asyncio.to_thread(server.hub.disconnect, cid):
                kinds[kind] += 1
            assert time.monotonic() - started < 120
        stop.set()
        await task
        await wait_for(lambda: client.last_seq == len(sent), timeout=30)
        got = received_messages(client)
    assert [seq for seq, _ in got] == list(range(1, len(sent) + 1))  # none lost, none twice
    assert dict(got) == sent
    assert client.stats.gaps == 0 and sum(kinds.values()) >= 50
    record(f"faults.{cls.transport}", cuts=sum(kinds.values()), cut_kinds=kinds, lost=0)


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_a_stalled_connection_is_noticed(make_server: Any, cls: type[BaseClient]) -> None:
    server = make_server(heartbeat_interval=0.2, poll_timeout=0.5, resume_grace=5)
    proxy = FaultyProxy(server.port)
    try:
        # Each client's own way of noticing silence: a read timeout above the heartbeat
        # (SSE), ping/pong (WebSocket), a read timeout above the poll hold (long polling).
        options: dict[str, Any] = {
            SSEClient: {"heartbeat_timeout": 1.0},
            WebSocketClient: {"ping_interval": 0.5, "ping_timeout": 0.5},
            LongPollClient: {"read_margin": 0.5},
        }[cls]
        async with fast_client(cls, proxy.url, **options) as client:
            cid = await client.wait_connected()
            server.hub.publish(cid, "before")
            await wait_for(lambda: client.last_seq == 1, 5)
            assert proxy.stall() >= 1
            stalled_at = time.monotonic()
            server.hub.publish(cid, "during the stall")
            await wait_for(lambda: client.stats.reconnects >= 1, 10)
            noticed_after = time.monotonic() - stalled_at
            await wait_for(lambda: client.last_seq == 2, 10)
            assert [m for _, m in received_messages(client)] == ["before", "during the stall"]
    finally:
        proxy.resume_forwarding()
        proxy.close()
    assert noticed_after < 10  # measured 1-3 s; generous for a busy machine
    record(f"stall.{cls.transport}", noticed_after_seconds=round(noticed_after, 2))


async def test_a_buffering_proxy_delays_sse(make_server: Any) -> None:
    """A proxy that buffers 4 KiB before forwarding holds SSE events back; heartbeats fill the
    buffer and so bound the delay, but only X-Accel-Buffering: no (or no such proxy) removes it."""
    server = make_server(heartbeat_interval=0.2, resume_grace=5)
    delays = {}
    for buffered in (0, 4096):
        proxy = FaultyProxy(server.port, buffer_bytes=buffered)
        try:
            async with fast_client(SSEClient, proxy.url, heartbeat_timeout=30) as client:
                if buffered:  # the connected event itself is held: wait for the buffer to fill
                    await wait_for(lambda: client.connection_id is not None, 20)
                cid = await client.wait_connected(timeout=20)
                published = time.monotonic()
                server.hub.publish(cid, "how late?")
                await wait_for(lambda: client.last_seq == 1, 20)
                delays[buffered] = time.monotonic() - published
        finally:
            proxy.close()
    assert delays[4096] > delays[0]
    record(
        "buffering_proxy.sse",
        delay_direct_ms=round(delays[0] * 1000, 1),
        delay_behind_4KiB_buffer_ms=round(delays[4096] * 1000, 1),
        heartbeat_interval_s=0.2,
    )
