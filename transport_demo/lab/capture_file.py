"""A capture file read back: the UDP flows in it (QUIC, WebTransport's), as conversations.

The relay keeps each TCP connection's segments in memory for :meth:`Capture.timeline`; the
datagrams of its UDP half (:mod:`transport_demo.lab.udp_relay`) are only in the file. This reads
them back with scapy's pcapng reader, one flow per client port, and dissects each datagram's QUIC
headers (:func:`~transport_demo.lab.dissect.dissect_quic`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader

from .dissect import Conversation, Segment, dissect_quic

__all__ = ["CLIENT_MAC", "udp_conversations"]

CLIENT_MAC = "02:00:00:00:00:01"
"""The source address of what the relay synthesized for the client's side (capture.py's)."""


def udp_conversations(source: str | Path | bytes, first_number: int = 1) -> list[Conversation]:
    """The UDP flows of a pcapng file (a path, or its bytes), numbered from ``first_number`` in
    the order their first datagram appears; each datagram a ``quic`` record."""
    flows: dict[int, list[Segment]] = {}
    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    # scapy's reader takes a file object too (its annotation says only a name)
    with stream, PcapNgReader(cast(Any, stream)) as reader:
        for packet in reader:
            if UDP not in packet or Ether not in packet:
                continue
            up = packet[Ether].src == CLIENT_MAC
            udp = packet[UDP]
            port = int(udp.sport if up else udp.dport)
            segment = Segment(float(packet.time), up, bytes(udp.payload), "UDP")
            flows.setdefault(port, []).append(segment)
    return [
        Conversation(number, port, tuple(segments), dissect_quic(segments))
        for number, (port, segments) in enumerate(flows.items(), first_number)
    ]
