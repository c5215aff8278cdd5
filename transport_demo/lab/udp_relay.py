"""The shaper's UDP half: QUIC (WebTransport's HTTP/3) through the same dialled network as TCP.

The TCP relay of :mod:`transport_demo.lab.network` reads a byte stream and writes it again; QUIC
cannot be relayed that way (it is datagrams, encrypted end to end, with its own loss recovery). So
the relay also listens on UDP at the same port number as its TCP port, and passes each datagram on
as it is: from each client address to the server's UDP port (the server's HTTP port number, where
it serves WebTransport) through a socket of its own, and the answers back.

What the network does to a datagram, each direction, on the same links as the TCP connections
(so the bandwidth cap and stalls are shared): it waits for the link, takes ``delay ± jitter`` and
arrives; or, with ``loss``, it is **dropped for good** — the relay does not retransmit, QUIC does
(RFC 9002: the sender sees the packet was not acknowledged, and sends the lost frames again in a
new packet). Datagrams may overtake each other under jitter (UDP has no order to keep: QUIC puts
each stream's bytes back in order, and only that stream's). During an outage every datagram is
dropped: QUIC keeps its connection and recovers when the path comes back, as long as the outage is
shorter than its idle timeout. A stall holds datagrams and delivers them when it ends. A cut does
nothing here: a relay cannot reset a QUIC connection (that takes its keys); an outage longer
than the idle timeout ends it.

Sans protocol knowledge: bytes in, bytes out, on the relay's event loop (``add_reader`` on
non-blocking sockets, so that nothing is awaited and a datagram's order of arrival is kept). It
knows the network only through what it is handed (its conditions, links, generators, outage and
capture), so that ``network`` imports this module and not the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["IDLE_FLOW", "LinkState", "Shaping", "UdpRelay"]

IDLE_FLOW = 60.0
"""Seconds without a datagram after which a client's flow (and its socket) may be reclaimed:
longer than QUIC's idle timeout here (30 s), so a live connection is never cut by the relay."""
_MAX_DATAGRAM = 65535
_MAX_HELD = 4096  # datagrams held by a stall, all flows together: past it they are dropped


class Shaping(Protocol):
    """What the network does to a datagram (the network's ``Conditions``)."""

    @property
    def delay_ms(self) -> float: ...
    @property
    def jitter_ms(self) -> float: ...
    @property
    def bandwidth_kbit(self) -> float | None: ...
    @property
    def loss(self) -> float: ...


class LinkState(Protocol):
    """One direction of the network, shared with the TCP relay: when it is next free, whether it
    is stalled, the bytes it delivered."""

    free_at: float
    stalled: bool
    bytes: int


Recorder = Callable[[tuple[str, int], bool, bytes, float], None]
"""Called with (client address, up, datagram, loop time) for each datagram delivered."""


@dataclass
class _Flow:
    """One client address and the relay's socket towards the server for it."""

    client: tuple[str, int]
    sock: socket.socket
    last: float
    closed: bool = False


class UdpRelay:
    """Relays UDP between clients at ``sock`` (bound, the relay's port) and ``target`` on
    ``loop``, shaped by ``conditions()`` on the links ``link(up)``, losses drawn from ``rngs``
    (up, down); nothing passes while ``down()`` (an outage). Counters are read from any thread
    (ints)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        target: tuple[str, int],
        *,
        conditions: Callable[[], Shaping],
        link: Callable[[bool], LinkState],
        rngs: tuple[random.Random, random.Random],
        down: Callable[[], bool],
        record: Recorder,
        max_flows: int,
    ) -> None:
        self._loop = loop
        self._front = sock
        self._target = target
        self._conditions = conditions
        self._link = link
        self._down = down
        self._record = record
        self.max_flows = max_flows
        self.port: int = sock.getsockname()[1]
        self._flows: dict[tuple[str, int], _Flow] = {}
        self._rng = {True: rngs[0], False: rngs[1]}
        self._held: list[tuple[_Flow, bool, bytes]] = []
        self.delivered = {True: 0, False: 0}
        """Datagrams delivered, by direction (``True``: client to server)."""
        self.lost = {True: 0, False: 0}
        """Datagrams dropped by ``loss``, by direction."""
        self.dropped = 0
        """Datagrams dropped otherwise: an outage, a full stall, too many flows."""
        self.flows = 0
        """Client addresses seen since the start."""
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._from_clients)

    # ---- the two directions ----------------------------------------------------------------

    def _from_clients(self) -> None:
        while True:
            try:
                data, address = self._front.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error for an earlier send: nothing to do with this one
                continue
            flow = self._flows.get(address) or self._open(address)
            if flow is not None:
                self._pass(flow, True, data)

    def _from_server(self, flow: _Flow) -> None:
        while not flow.closed:
            try:
                data = flow.sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the server's port was closed (ICMP): later datagrams may still come
                continue
            self._pass(flow, False, data)

    def _open(self, address: tuple[str, int]) -> _Flow | None:
        now = self._loop.time()
        for key, old in list(self._flows.items()):
            if now - old.last > IDLE_FLOW:
                self._forget(key, old)
        if len(self._flows) >= self.max_flows:
            self.dropped += 1
            return None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(self._target)
        except OSError:
            sock.close()
            self.dropped += 1
            return None
        flow = _Flow(address, sock, now)
        self._flows[address] = flow
        self.flows += 1
        self._loop.add_reader(sock.fileno(), self._from_server, flow)
        return flow

    def _pass(self, flow: _Flow, up: bool, data: bytes) -> None:
        """Drop ``data`` (an outage, a loss) or schedule its arrival on the other side."""
        now = self._loop.time()
        flow.last = now
        if self._down():
            self.dropped += 1
            return
        conditions = self._conditions()
        if conditions.loss and self._rng[up].random() < conditions.loss:
            self.lost[up] += 1  # dropped for good: QUIC's own recovery sends its frames again
            return
        link = self._link(up)
        start = max(now, link.free_at)
        rate = conditions.bandwidth_kbit
        sent = start + (len(data) * 8 / (rate * 1000) if rate else 0.0)
        link.free_at = sent
        jitter = conditions.jitter_ms
        delay = conditions.delay_ms + (self._rng[up].uniform(-jitter, jitter) if jitter else 0.0)
        self._loop.call_at(sent + max(0.0, delay) / 1000, self._deliver, flow, up, data)

    def _deliver(self, flow: _Flow, up: bool, data: bytes) -> None:
        if flow.closed:
            return
        link = self._link(up)
        if link.stalled:
            if len(self._held) >= _MAX_HELD:
                self.dropped += 1
            else:
                self._held.append((flow, up, data))
            return
        try:
            if up:
                flow.sock.send(data)
            else:
                self._front.sendto(data, flow.client)
        except OSError:  # a full socket buffer or an unreachable port: UDP drops, so do we
            self.dropped += 1
            return
        link.bytes += len(data)
        self.delivered[up] += 1
        self._record(flow.client, up, data, self._loop.time())

    # ---- what the network calls -----------------------------------------------------------

    def resume(self) -> None:
        """A stall ended: deliver what it held, in the order it came (still-stalled directions
        hold theirs again)."""
        held, self._held = self._held, []
        for flow, up, data in held:
            self._deliver(flow, up, data)

    @property
    def active(self) -> int:
        """Client addresses with a flow now."""
        return len(self._flows)

    def close(self) -> None:
        """Stop reading and close every socket (on the relay's loop)."""
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._front.fileno())
        self._front.close()
        for key, flow in list(self._flows.items()):
            self._forget(key, flow)
        self._held.clear()

    def _forget(self, key: tuple[str, int], flow: _Flow) -> None:
        flow.closed = True
        self._flows.pop(key, None)
        with contextlib.suppress(Exception):
            self._loop.remove_reader(flow.sock.fileno())
        flow.sock.close()
