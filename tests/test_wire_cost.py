"""What one message costs on the wire, counted from the relay's capture (notebook 04): the file's
count agrees with the relay's own counters, and each transport's figure is what its framing
predicts, TCP/IP or UDP/IP headers included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from transport_demo import start_server
from transport_demo.lab.network import network
from transport_demo.lab.wire_cost import WireCost, count_capture, wire_cost
from transport_demo.server import launcher as server_module
from transport_demo.server.launcher import RunningServer


@pytest.fixture
def server() -> Iterator[RunningServer]:
    yield start_server(port=0, heartbeat_interval=30, poll_timeout=3, resume_grace=10)
    server_module.stop_all()


def test_the_files_count_is_the_relays(server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "count.pcapng"
    with network(server, capture=path) as net:
        for _ in range(3):
            httpx.post(net.url + "/poll", json={}, timeout=5)
        assert net.wait_idle()
        carried = net.bytes_up + net.bytes_down
    counted = count_capture(path)
    assert counted.payload_bytes == carried
    # each of the 3 connections: a handshake (3), request and answer (2 or more), FINs and ACK (3)
    assert counted.packets >= 3 * 8
    assert (
        counted.ip_bytes == counted.payload_bytes + 40 * counted.packets
    )  # IPv4 + TCP, no options


def test_one_message_costs_what_its_framing_says(server: RunningServer, tmp_path: Path) -> None:
    def cost(transport: str) -> WireCost:
        return asyncio.run(wire_cost(server, transport, few=3, many=13, folder=tmp_path))

    websocket, polling, quic = cost("websocket"), cost("long-polling"), cost("webtransport")
    # a compressed WebSocket frame: tens of bytes, one segment, 40 bytes of headers on it
    assert websocket.carrier == "TCP" and 0.9 <= websocket.packets <= 1.5
    assert 5 < websocket.payload < 60
    assert websocket.ip == pytest.approx(websocket.payload + 40 * websocket.packets)
    # a long poll: the answer and the next request, each with full HTTP headers
    assert polling.payload > 5 * websocket.payload and polling.packets >= 2
    # QUIC: every packet encrypted (a 16-byte tag at least) and acknowledged by QUIC itself
    assert quic.carrier == "UDP" and quic.packets >= 1 and quic.payload > 100
    # 28 bytes of IP and UDP headers a datagram; the GET /webtransport before the session is TCP
    # (40), and one run's capture may hold a TCP segment more than the other's
    # (the figures are rounded to a tenth: a packet count off by 0.05 either way)
    assert 28 * (quic.packets - 0.05) <= quic.ip - quic.payload <= 40 * (quic.packets + 0.05)
    assert sorted(tmp_path.glob("04_*.pcapng"))  # the files stay, for Wireshark
