"""Loss, for real (issue 24): WebTransport through the shaper's UDP relay — delay, loss QUIC
recovers from, an outage it rides out — the TCP transports through TCP loss (every event once, in
order), and heartbeats as datagrams (lost ones stay lost, durable events all there)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.waiting import until_async
from transport_demo import RunningServer
from transport_demo.clients import BaseClient, SSEClient, WebSocketClient, WebTransportClient
from transport_demo.lab.network import network

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., RunningServer]
FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}


async def _events(client: BaseClient, kind: str, count: int, timeout: float) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            event = await client.next_event(timeout)
            if event["type"] == kind:
                got.append(event)
    return got


async def test_a_session_through_the_udp_relay_keeps_the_contract_with_delay(
    server: RunningServer,
) -> None:
    with network(server, delay_ms=15) as net:
        client = WebTransportClient(net.url, **FAST)
        async with client:
            cid = await client.wait_connected()
            # the relay answered GET /webtransport with its own port: UDP went through it
            assert client.session_url == f"https://127.0.0.1:{net.port}/wt"
            beats = await _events(client, "heartbeat", 2, 5)
            assert [b["count"] for b in beats] == [1, 2]
            started = time.monotonic()
            await client.send("through the relay")
            (echo,) = await _events(client, "user_message", 1, 5)
            assert (echo["seq"], echo["message"]) == (1, "through the relay")
            assert time.monotonic() - started >= 0.030  # a round trip of 2 x 15 ms, at least
            assert server.hub.publish(cid, "pushed") == 2
            (pushed,) = await _events(client, "message", 1, 5)
            assert pushed["seq"] == 2
        assert net.datagrams > 10 and net.udp is not None and net.udp.flows == 1


async def test_quic_recovers_every_durable_event_from_real_loss(server: RunningServer) -> None:
    with network(server, delay_ms=5, loss=0.1, seed=3) as net:
        async with WebTransportClient(net.url, **FAST) as client:
            cid = await client.wait_connected()
            for i in range(20):
                await client.send(f"t{i}")
            for i in range(40):
                server.hub.publish(cid, f"m{i}")
            await until_async(lambda: client.last_seq == 60, 15, "all 60 durable events")
        assert net.lost > 0  # datagrams were dropped for good; QUIC sent their frames again
    events = [e for e in client.take_unread() if "seq" in e]
    assert [e["seq"] for e in events] == list(range(1, 61))
    assert client.stats.gaps == 0 and client.stats.duplicates == 0
    assert client.stats.reconnects == 0  # recovered inside the one QUIC connection


async def test_quic_rides_out_an_outage_without_reconnecting(server: RunningServer) -> None:
    with network(server, delay_ms=2) as net:
        async with WebTransportClient(net.url, **FAST) as client:
            cid = await client.wait_connected()
            await asyncio.to_thread(net.outage, 1.0)  # every datagram dropped for a second
            server.hub.publish(cid, "during the outage")
            await asyncio.sleep(0.5)
            assert client.last_seq == 0  # nothing passes
            assert net.udp is not None and net.udp.dropped > 0
            await until_async(lambda: client.last_seq == 1, 10, "the event after the outage")
            assert client.stats.reconnects == 0 and client.connection_id == cid


@pytest.mark.parametrize("client_type", [WebSocketClient, SSEClient])
async def test_tcp_loss_delivers_every_event_once_in_order(
    server: RunningServer, client_type: type[BaseClient]
) -> None:
    with network(server, delay_ms=2, loss=0.1, rto_ms=60, seed=5) as net:
        async with client_type(net.url, **FAST) as client:
            cid = await client.wait_connected()
            for i in range(60):
                server.hub.publish(cid, f"m{i}")
                if i % 10 == 9:
                    await asyncio.sleep(0.02)  # several segments, so that some are "lost"
            await until_async(lambda: client.last_seq == 60, 15, "all 60 events")
        assert net.retransmitted > 0
    messages = [e for e in client.take_unread() if e["type"] == "message"]
    assert [e["message"] for e in messages] == [f"m{i}" for i in range(60)]
    assert client.stats.gaps == 0 and client.stats.duplicates == 0


async def test_datagram_heartbeats_arrive_and_a_bad_choice_is_refused(
    make_server: MakeServer,
) -> None:
    server = make_server(heartbeat_interval=0.05)
    client = WebTransportClient(server.url, heartbeats="datagram", **FAST)
    async with client:
        cid = await client.wait_connected()
        await _events(client, "heartbeat", 3, 5)
        assert client.datagrams >= 3 and list(client.datagram_heartbeats)[:3] == [1, 2, 3]
        server.hub.publish(cid, "on the stream")
        (message,) = await _events(client, "message", 1, 5)
        assert message["seq"] == 1  # durable events keep the stream
    bad = WebTransportClient(server.url, **FAST)
    bad.heartbeats = "carrier-pigeon"  # what a hand-made URL could ask
    async with bad:
        await until_async(lambda: bad.state == "error", 5, "the refusal: it gives up")
    assert any(e.get("error") == "invalid_request" for e in bad.take_unread())


async def test_lost_datagram_heartbeats_stay_lost_while_stream_events_all_arrive(
    make_server: MakeServer,
) -> None:
    server = make_server(heartbeat_interval=0.04)
    with network(server, delay_ms=2, loss=0.15, seed=7) as net:
        client = WebTransportClient(net.url, heartbeats="datagram", **FAST)
        async with client:
            cid = await client.wait_connected()
            for i in range(30):
                server.hub.publish(cid, f"m{i}")
                await asyncio.sleep(0.05)
            await until_async(lambda: client.last_seq == 30, 15, "all 30 durable events")
            counts = list(client.datagram_heartbeats)
    assert len(counts) > 10
    missing = set(range(counts[0], counts[-1] + 1)) - set(counts)
    assert missing, "at 15 % loss some heartbeat datagrams must be missing"
    assert counts == sorted(counts)  # never sent again (and no jitter here to reorder them)
    assert client.stats.gaps == 0 and client.stats.reconnects == 0
