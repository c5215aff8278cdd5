"""What one message costs on the wire, counted from a packet capture (issue 25, notebook 04).

The benchmark's "bytes per message" stop at HTTP and WebSocket framing: they are what the
application's sockets carried. Below them every TCP segment has IPv4 and TCP headers, every QUIC
packet IPv4 and UDP headers, and QUIC's own header, acknowledgements and encryption are inside the
UDP payload. :func:`wire_cost` runs one client per transport through the capturing relay
(:func:`~transport_demo.lab.network.network` with ``capture=``), pushes messages one at a time
(each waits for the last to arrive: a trickle, where nothing shares a packet), and reads the
pcapng file back (:func:`count_capture`): packets, bytes above IP, bytes with the IP headers.

Opening and closing a connection (TCP's handshake, QUIC's and TLS's, the first request, the
``connected`` event, the FINs) would weigh on a short run; so each transport runs twice, with
``few`` and ``many`` messages, and the cost of one message is the difference divided by
``many - few``: what one more message adds.

What is real and what is synthesized (docs/packet-lens.md): the payloads and the segments the
relay cut are real; the IP, TCP and UDP headers are the relay's, 20 + 20 (no TCP options; Linux
adds 12 bytes of timestamps) or 20 + 8, and there are no pure TCP acknowledgements (a kernel sends
one about every second segment it receives). QUIC's acknowledgements are real: they are QUIC
packets the client and server sent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import PcapNgReader

from ..clients import CLIENTS
from ..server.launcher import RunningServer
from .network import network

__all__ = ["CaptureCount", "WireCost", "count_capture", "wire_cost"]


@dataclass(frozen=True)
class CaptureCount:
    """A capture's packets, their payload (above TCP or UDP) and their IP datagrams' bytes."""

    packets: int
    payload_bytes: int
    ip_bytes: int


@dataclass(frozen=True)
class WireCost:
    """What one more message cost, both directions together: packets, bytes above TCP/UDP
    (``payload``) and with the IP, TCP or UDP headers (``ip``); ``carrier`` is TCP or UDP."""

    transport: str
    carrier: str
    packets: float
    payload: float
    ip: float

    def __repr__(self) -> str:
        return (
            f"<{self.transport}: {self.packets:.1f} packets, {self.payload:.0f} bytes above "
            f"{self.carrier}, {self.ip:.0f} with IP/{self.carrier} headers>"
        )


def count_capture(path: str | Path) -> CaptureCount:
    """Count a pcapng file's IPv4 packets: how many, their TCP or UDP payload, their length."""
    packets = payload = ip = 0
    with PcapNgReader(str(path)) as reader:
        for packet in reader:
            if IP not in packet:
                continue
            packets += 1
            ip += len(packet[IP])
            # From the headers' own lengths, not from what scapy dissected above them: a port
            # scapy binds to a protocol of its own parses the payload into layers whose lengths
            # need not add up to the bytes (it happened with a random client port).
            if TCP in packet:
                payload += packet[IP].len - 4 * packet[IP].ihl - 4 * packet[TCP].dataofs
            elif UDP in packet:
                payload += packet[UDP].len - 8
    return CaptureCount(packets, payload, ip)


async def _trickle(server: RunningServer, transport: str, messages: int, path: Path) -> None:
    with network(server, capture=path) as net:
        client = CLIENTS[transport](net.url)
        await client.start()
        try:
            cid = await client.wait_connected(10)
            for n in range(1, messages + 1):
                server.hub.publish(cid, f"message {n}")
                deadline = time.monotonic() + 10
                while (await client.next_event(10)).get("type") != "message":
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{transport}: message {n} did not arrive")
        finally:
            await client.close()
        await asyncio.to_thread(net.wait_idle, 5.0)


async def wire_cost(
    server: RunningServer,
    transport: str,
    *,
    few: int = 5,
    many: int = 25,
    folder: str | Path = ".",
) -> WireCost:
    """One message's cost for ``transport`` (``"websocket"``, ``"webtransport"``, …) through
    the capturing relay: two runs, ``few`` and ``many`` messages, their captures written in
    ``folder`` as ``04_<transport>_<n>.pcapng``; the difference per message."""
    counts = []
    for messages in (few, many):
        path = Path(folder) / f"04_{transport}_{messages}.pcapng"
        await _trickle(server, transport, messages, path)
        counts.append(count_capture(path))
    small, large = counts
    extra = many - few
    return WireCost(
        transport,
        "UDP" if transport == "webtransport" else "TCP",
        (large.packets - small.packets) / extra,
        (large.payload_bytes - small.payload_bytes) / extra,
        (large.ip_bytes - small.ip_bytes) / extra,
    )
