"""What crossed the relay, as a packet capture Wireshark opens: pcapng, written without root.

A live capture needs ``CAP_NET_RAW``, which a student's container on JupyterHub or Binder does not
have. The relay (:mod:`transport_demo.lab.network`) already sees every byte of a lesson's traffic,
so it writes the capture itself: ``network(server, capture="lesson.pcapng")``.

What is real and what is made up. The bytes, their order, which connection and direction they
belong to, how the shaper cut them into segments and when each one reached the other side are
what the relay did. The packet headers around them are synthesized, since the relay sees a byte
stream, not packets: Ethernet and IPv4 with loopback addresses, and TCP with the client's real
port, the relay's port as the server's, sequence and acknowledgement numbers that count the bytes
as TCP would (from a random initial number), a three-way handshake when the relay accepts a
connection, FIN when a side closes its half, and RST when the connection is cut (or refused during
an outage). There are no pure acknowledgements: every segment carries, in its ACK field, all the
other side has sent so far; so Wireshark's TCP analysis finds nothing missing or out of order,
and the segment counts of 04 are the relay's, not a kernel's (which would add an ACK every other
segment).

QUIC (WebTransport) through the relay's UDP half is written too, one record per datagram as it
was delivered, in a synthesized UDP header (:func:`udp_packet`); datagrams the network lost are not
in the file (the relay counts them). Wireshark finds QUIC by itself on port 443 only: elsewhere
use Decode As (``tshark -d udp.port==PORT,quic``). Without the session's TLS secrets it reads the
packets' headers and the Initial packets' handshake, not the streams.

:class:`TcpFlow` is the sans-I/O part: one connection's TCP state, turning "these bytes went up"
into packets. :class:`Capture` writes packets to a file as they come (scapy's ``PcapNgWriter``),
bounded by ``limit_bytes``: once full it says so (:attr:`Capture.full`, and in ``repr``) and writes
nothing more, so a lesson left running cannot fill the disk.

It also keeps each connection's segments in memory (at most ``keep_bytes`` of payload), so a
notebook can dissect them (:meth:`Capture.timeline`, :mod:`transport_demo.lab.dissect`) while the
relay runs, without reading the file back: the file is still being written then, and parsing it
again with scapy would cost more than keeping the bytes we already hold.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter

if TYPE_CHECKING:
    from .dissect import Conversation, Segment

__all__ = ["CAPTURE_LIMIT", "KEEP_LIMIT", "Capture", "Endpoint", "TcpFlow", "udp_packet"]

CAPTURE_LIMIT = 64 << 20
"""The most a capture file grows to (bytes): a lesson's traffic is a few MiB at most."""
KEEP_LIMIT = 8 << 20
"""The most payload a capture keeps in memory for :meth:`Capture.timeline` (bytes)."""

_CLIENT_MAC = "02:00:00:00:00:01"  # locally administered addresses: no real card's
_SERVER_MAC = "02:00:00:00:00:02"
_WINDOW = 65535


@dataclass(frozen=True)
class Endpoint:
    """An IPv4 address and a TCP port."""

    host: str
    port: int


class TcpFlow:
    """One relayed connection as TCP segments (sans-I/O: it returns packets, it writes nothing).

    ``up`` is client to server. Sequence numbers start at a random initial number per side; the
    SYN and each FIN count one, as in RFC 9293 §3.4; every packet after the SYN acknowledges
    everything the other side has sent.
    """

    def __init__(
        self, client: Endpoint, server: Endpoint, rng: random.Random | None = None
    ) -> None:
        rng = rng or random.Random()
        self.client, self.server = client, server
        self._next = {True: rng.getrandbits(32), False: rng.getrandbits(32)}  # up: client's
        self._fins: list[bool] = []  # which sides closed their half, in order
        self.reset_sent = False

    def _packet(self, up: bool, flags: str, payload: bytes = b"", ack: bool = True) -> Packet:
        src, dst = (self.client, self.server) if up else (self.server, self.client)
        tcp = TCP(
            sport=src.port,
            dport=dst.port,
            seq=self._next[up] % (1 << 32),
            ack=self._next[not up] % (1 << 32) if ack else 0,
            flags=flags,
            window=_WINDOW,
        )
        frame = (
            Ether(src=_CLIENT_MAC if up else _SERVER_MAC, dst=_SERVER_MAC if up else _CLIENT_MAC)
            / IP(src=src.host, dst=dst.host)
            / tcp
        )
        return frame / Raw(payload) if payload else frame

    def handshake(self) -> list[Packet]:
        """SYN, SYN-ACK, ACK: the connection as the relay accepted it."""
        syn = self._packet(True, "S", ack=False)
        self._next[True] += 1
        syn_ack = self._packet(False, "SA")
        self._next[False] += 1
        return [syn, syn_ack, self._packet(True, "A")]

    def refused(self) -> list[Packet]:
        """A SYN answered by RST: nothing listened (the relay during an outage)."""
        syn = self._packet(True, "S", ack=False)
        self._next[True] += 1
        self.reset_sent = True
        return [syn, self._packet(False, "RA")]

    def data(self, up: bool, payload: bytes) -> Packet:
        """One segment of ``payload`` (at most a segment's worth: the shaper's cut)."""
        packet = self._packet(up, "PA", payload)
        self._next[up] += len(payload)
        return packet

    def fin(self, up: bool) -> Packet:
        """The side that sends ``up`` (the client if True) closes its half."""
        packet = self._packet(up, "FA")
        self._next[up] += 1
        self._fins.append(up)
        return packet

    def finish(self) -> list[Packet]:
        """The end of the relayed connection: after both FINs, the last ACK (from the side that
        closed first, acknowledging the other's FIN); a RST from the server's side if either half
        was still open (a cut, or the relay closing)."""
        if self.reset_sent:
            return []
        self.reset_sent = True
        if len(set(self._fins)) == 2:
            return [self._packet(self._fins[0], "A")]
        return [self._packet(False, "RA")]


def udp_packet(client: Endpoint, server: Endpoint, up: bool, payload: bytes) -> Packet:
    """One UDP datagram the relay delivered (a QUIC packet, for WebTransport), in synthesized
    Ethernet, IPv4 and UDP headers, the client's real port and the relay's as the server's (as
    for TCP). Datagrams the network lost are not written: the file is what arrived."""
    src, dst = (client, server) if up else (server, client)
    frame = (
        Ether(src=_CLIENT_MAC if up else _SERVER_MAC, dst=_SERVER_MAC if up else _CLIENT_MAC)
        / IP(src=src.host, dst=dst.host)
        / UDP(sport=src.port, dport=dst.port)
    )
    return frame / Raw(payload)


class Capture:
    """A pcapng file the relay writes as bytes cross it. Thread-safe; ``close()`` flushes.

    Every packet written is also kept, per connection, as a
    :class:`~transport_demo.lab.dissect.Segment` (payload and flags, not the synthesized
    headers), until ``keep_bytes`` of payload are held; then :attr:`truncated` is set and later
    segments are only in the file."""

    def __init__(
        self, path: str | Path, *, limit_bytes: int = CAPTURE_LIMIT, keep_bytes: int = KEEP_LIMIT
    ) -> None:
        self.path = Path(path)
        self.limit_bytes = limit_bytes
        self.keep_bytes = keep_bytes
        self.packets = 0
        self.bytes = 0
        self.full = False
        self.closed = False
        self.truncated = False
        self._kept = 0
        self._connections: list[tuple[int, list[Segment]]] = []  # (client port, segments)
        self._by_port: dict[int, list[Segment]] = {}  # the latest connection from each port
        self._lock = threading.Lock()
        self._writer = PcapNgWriter(str(self.path))

    def write(self, packets: list[Packet], at: float) -> None:
        """Append ``packets`` with the wall-clock time ``at`` (seconds since the epoch). Once the
        file would pass ``limit_bytes``, nothing more is written and :attr:`full` is set."""
        with self._lock:
            if self.closed or self.full:
                return
            for packet in packets:
                size = len(packet) + 32  # the Enhanced Packet Block around it (RFC draft pcapng)
                if self.bytes + size > self.limit_bytes:
                    self.full = True
                    return
                packet.time = at
                self._writer.write(packet)
                self.packets += 1
                self.bytes += size
                self._keep(packet, at)

    def _keep(self, packet: Packet, at: float) -> None:
        from .dissect import Segment

        if self.truncated or TCP not in packet:  # UDP (QUIC) is in the file, not the timeline
            return
        tcp = packet[TCP]
        payload = bytes(tcp.payload)
        if self._kept + len(payload) > self.keep_bytes:
            self.truncated = True
            return
        self._kept += len(payload)
        up = packet[Ether].src == _CLIENT_MAC
        port = int(tcp.sport if up else tcp.dport)
        flags = str(tcp.flags)
        segments = self._by_port.get(port)
        if segments is None or (flags == "S" and segments):  # a SYN starts a new connection
            segments = self._by_port[port] = []
            self._connections.append((port, segments))
        segments.append(Segment(at, up, payload, "PA" if payload else flags))

    def timeline(self) -> list[Conversation]:
        """Every connection so far, in the order the relay accepted them, dissected
        (:func:`~transport_demo.lab.dissect.dissect`): safe to call while the relay runs."""
        from .dissect import Conversation, dissect

        with self._lock:
            snapshot = [(port, tuple(segments)) for port, segments in self._connections]
        return [
            Conversation(number, port, segments, dissect(segments))
            for number, (port, segments) in enumerate(snapshot, 1)
        ]

    def file_bytes(self) -> bytes:
        """The capture file as written so far (flushed first): what a download hands over."""
        with self._lock:
            if not self.closed:
                self._writer.flush()
            return self.path.read_bytes()

    def close(self) -> None:
        """Flush and close the file (safe to call twice)."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._writer.close()

    def __repr__(self) -> str:
        state = (
            f"full at {self.limit_bytes >> 20} MiB: later packets not written"
            if self.full
            else ("closed" if self.closed else "writing")
        )
        return f"<Capture {self.path.name}: {self.packets} packets, {self.bytes} bytes, {state}>"
