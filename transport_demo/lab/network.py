"""A network you can dial: a TCP and UDP relay on 127.0.0.1 that delays, jitters, rate-limits,
stalls and loses what goes through it, in user space (no root, no kernel queueing discipline).

::

    from transport_demo.lab.network import network
    with network(server, delay_ms=50, jitter_ms=5, bandwidth_kbit=2000) as net:
        client = SSEClient(net.url)          # every byte now takes 50 ± 5 ms each way
        net.stall("down", seconds=3)         # server -> client stops for 3 s; nothing is closed
        net.cut()                            # every connection through it is reset

    with network(server, delay_ms=20, loss=0.02, seed=1) as net:   # 2 % of packets lost
        ...

    with network(server, capture="lesson.pcapng") as net:   # what crossed it, for Wireshark
        ...

How it models a link. Each direction ("up": client to server, "down": server to client) is one
link shared by every connection through the relay. A chunk read from one side is cut into
segments of at most :data:`SEGMENT` bytes; each segment leaves when the link is free and takes
``8 * len / bandwidth`` to send (serialisation), then arrives ``delay ± jitter`` later. Arrivals
on one connection never overtake each other: TCP delivers in order, so jitter here delays, it
never reorders. A new connection pays one round trip before its first byte goes up (the TCP
handshake a relay on loopback would otherwise skip: the client's ``connect()`` itself returns at
once, so the price shows up as a later first answer).

Loss (``loss=0.02``: one packet in fifty, each direction, drawn from ``seed`` so that a run can
be repeated). TCP is modelled as TCP behaves, not dropped: a "lost" segment arrives one
retransmission timeout late (:data:`RTO_MS`, 200 ms, Linux's minimum), and every byte behind it
on that connection waits for it, since TCP delivers in order — head-of-line blocking, whichever
logical stream the later bytes belong to. UDP (below) is dropped for real.

QUIC. The relay also listens on UDP at the same port number and relays datagrams to the server's
UDP port of that number (where it serves WebTransport), under the same delay, jitter, bandwidth,
stalls and outages, and loss for real: QUIC recovers what it needs (RFC 9002), and only the stream
whose frames were lost waits (RFC 9000 §2: no order between streams; §2.2: each stream in
order). Clients find the session's URL with ``GET /webtransport``: the relay puts its own port in
that answer, so the Python client and a page both come through it
(:mod:`transport_demo.lab.udp_relay`).

What it does not model: TCP's fast retransmit, its congestion window, MTU. A stall is not loss:
bytes wait and arrive together, in order, when it ends, on every stream alike (a stalled path
would stop every QUIC stream too; RFC 9000 §13 removes only the wait a *lost* packet causes to
other streams).

With ``capture=PATH`` the relay also writes everything it delivers, both directions, as a pcapng
file Wireshark opens (:mod:`transport_demo.lab.capture`: the segments as the shaper sent them, when
they arrived, in synthesized TCP/IP headers), bounded in size and flushed on close.

Bounded: at most ``max_connections`` at a time (more are closed at once) and ``buffer_bytes``
queued per connection and direction; a full queue stops reading from that side, so the sender's
own TCP buffers fill and it feels backpressure, as behind a slow link. The relay runs on an event
loop in a daemon thread of its own, so it works the same from a notebook cell, a test or the
benchmark; :meth:`Network.close` (or leaving the ``with`` block, or the interpreter exiting) ends
every connection and task and closes every socket.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .capture import Capture, TcpFlow
    from .dissect import Conversation
    from .udp_relay import UdpRelay

__all__ = ["RTO_MS", "SEGMENT", "Conditions", "Direction", "Network", "network"]

SEGMENT = 1460
"""Bytes per segment on a shaped link: a TCP segment's payload on an Ethernet path."""
RTO_MS = 200.0
"""The retransmission timeout modelled for a lost TCP segment: Linux's minimum (``TCP_RTO_MIN``,
200 ms), which is what a connection on a short path gets, since its RTT-based timeout (RFC 6298
§2) is far below it. RFC 6298 §2.4 asks for at least 1 s; Linux chose less. Fast retransmit (RFC
5681 §3.2) can recover sooner when three later segments arrive; the model does not, so it shows
the timeout's cost (``rto_ms=`` changes it)."""

T = TypeVar("T")


class Direction(enum.StrEnum):
    """Which way bytes flow through the relay."""

    UP = "up"  # client -> server
    DOWN = "down"  # server -> client
    BOTH = "both"


@dataclass(frozen=True)
class Conditions:
    """What the link does to every byte. ``Conditions()`` is loopback: no delay, no limit."""

    delay_ms: float = 0.0
    """One-way delay, each direction (a round trip costs twice this)."""
    jitter_ms: float = 0.0
    """Each segment's delay is drawn uniformly from ``delay_ms ± jitter_ms`` (never below 0)."""
    bandwidth_kbit: float | None = None
    """Link rate in kilobits (1000 bits) per second, each direction; None: unlimited."""
    handshake: bool = True
    """A new connection's first byte up waits one round trip, like a TCP handshake."""
    loss: float = 0.0
    """The chance that a packet is lost, each direction (0.02: one in fifty). A UDP datagram is
    dropped for good; a TCP segment arrives ``rto_ms`` late, and everything behind it on its
    connection waits for it (TCP's retransmission, see :data:`RTO_MS`)."""
    rto_ms: float = RTO_MS
    """The retransmission timeout a lost TCP segment waits before it is sent again (doubled for
    each further loss of the same segment, RFC 6298 §5.5)."""

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if not 0 <= self.loss < 1:
            raise ValueError("loss must be at least 0 and below 1 (0.02 is 2 %)")
        if self.rto_ms < 0:
            raise ValueError("rto_ms must be >= 0")
        if self.bandwidth_kbit is not None and self.bandwidth_kbit <= 0:
            raise ValueError("bandwidth_kbit must be > 0 (or None for no limit)")

    @property
    def rtt_ms(self) -> float:
        """The round trip without jitter or serialisation: twice the one-way delay."""
        return 2 * self.delay_ms

    def label(self) -> str:
        """A short name for tables and plots: ``loopback``, ``25 ms``, ``25±5 ms, 2000 kbit/s``."""
        quiet = not self.delay_ms and not self.jitter_ms and not self.loss
        if quiet and self.bandwidth_kbit is None:
            return "loopback"
        parts = [f"{self.delay_ms:g}" + (f"±{self.jitter_ms:g}" if self.jitter_ms else "") + " ms"]
        if self.bandwidth_kbit is not None:
            parts.append(f"{self.bandwidth_kbit:g} kbit/s")
        if self.loss:
            parts.append(f"{self.loss * 100:g} % loss")
        return ", ".join(parts)

    def retransmission(self, rng: random.Random) -> float:
        """Seconds a TCP segment arrives late: 0 unless it is lost (drawn from ``rng``), then
        one RTO, plus twice that if the retransmission is lost too, and so on (at most 6
        tries: the model's bound, not TCP's)."""
        late, rto = 0.0, self.rto_ms / 1000
        for _ in range(6):
            if not self.loss or rng.random() >= self.loss:
                break
            late += rto
            rto *= 2
        return late


class _HasUrl(Protocol):
    @property
    def url(self) -> str: ...


@dataclass
class _Link:
    """One direction of the network: when it is next free to send, and whether it is stalled."""

    free_at: float = 0.0
    stalled: bool = False
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    bytes: int = 0


class _Pipe:
    """One direction of one connection: a time-ordered queue of segments between a reader and
    a writer. ``None`` as data is the end of the stream (the sender closed its side)."""

    def __init__(self, link: _Link, limit: int, rng: random.Random | None = None) -> None:
        self.link = link
        self.limit = limit
        self.rng = rng or random.Random()  # this direction's losses: reproducible with a seed
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.queued = 0
        self.last_arrival = 0.0
        self.not_before = 0.0  # no segment leaves earlier (a new connection's handshake)
        self.changed = asyncio.Event()

    def put(self, arrival: float, data: bytes | None) -> None:
        arrival = max(arrival, self.last_arrival)  # in order: TCP never reorders a stream
        self.last_arrival = arrival
        self.queue.append((arrival, data))
        self.queued += len(data or b"")
        self.changed.set()

    def take_due(self, now: float) -> tuple[list[bytes], bool]:
        """The segments that have arrived by ``now``, and whether the end of stream is among
        them."""
        out: list[bytes] = []
        end = False
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                end = True
                break
            out.append(data)
            self.queued -= len(data)
        self.changed.set()
        return out, end


class Network:
    """A shaped TCP relay to ``target`` (a URL, a server with ``.url``, or a port on
    127.0.0.1). Use :func:`network` to make one; ``url`` is what clients should connect to."""

    def __init__(
        self,
        target: str | int | _HasUrl,
        conditions: Conditions | None = None,
        *,
        max_connections: int = 256,
        buffer_bytes: int = 1 << 20,
        seed: int | None = None,
        capture: str | Path | None = None,
        capture_limit: int | None = None,
        udp: bool = True,
    ) -> None:
        url = target if isinstance(target, str) else None
        if isinstance(target, int):
            url = f"http://127.0.0.1:{target}"
        elif not isinstance(target, str):
            url = target.url
        assert url is not None
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url!r} names no host and port")
        self._target = (parts.hostname, parts.port)
        self._parts = parts
        self.conditions = conditions or Conditions()
        self.max_connections = max_connections
        self.buffer_bytes = buffer_bytes
        self.port = 0
        self.connections = 0  # accepted since the start
        self.refused = 0  # reset at once: max_connections reached, or during an outage
        self.cuts = 0
        self._live = 0
        self._down_until = 0.0
        self.seed = seed
        self._random = random.Random(seed)
        self.retransmitted = 0
        """TCP segments "lost" and delivered an RTO late (``loss=``)."""
        self.capture: Capture | None = None
        """The pcapng file being written (``capture=PATH``), or None."""
        if capture is not None:
            from .capture import CAPTURE_LIMIT, Capture

            self.capture = Capture(capture, limit_bytes=capture_limit or CAPTURE_LIMIT)
        self._wall = 0.0  # time.time() - loop.time(): the capture's timestamps are wall-clock
        self._links: dict[Direction, _Link] = {}
        self._open: set[asyncio.StreamWriter] = set()
        self._flows: dict[asyncio.StreamWriter, TcpFlow] = {}  # the capture's, by client side
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._udp_wanted = udp
        self.udp: UdpRelay | None = None
        """The UDP relay (QUIC: WebTransport), on :attr:`port`'s number; None with ``udp=False``."""
        self._answer_from = f':{self._target[1]}/wt"'.encode()  # GET /webtransport's url ...
        self._answer_to = b""  # ... and the relay's, once bound (same length: see _bind)
        self._loop = asyncio.new_event_loop()
        self._closed = False
        started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="transport-demo-network", daemon=True
        )
        self._thread.start()
        if not started.wait(10) or self._error is not None:
            self.close()
            raise RuntimeError(f"the network relay did not start: {self._error!r}")
        atexit.register(self.close)

    # ---- what a cell or a test uses -------------------------------------------------------

    @property
    def url(self) -> str:
        """The target's URL with host and port swapped for the relay's (path kept)."""
        netloc = f"127.0.0.1:{self.port}"
        return urlunsplit(self._parts._replace(netloc=netloc)).rstrip("/")

    @property
    def browser_url(self) -> str:
        """The relay's address for the notebook's browser page: :attr:`url`, or, when this code
        runs inside a Jupyter server with jupyter-server-proxy (JupyterHub, Binder), the proxied
        path to the relay's port (see :mod:`transport_demo.server.urls`)."""
        from ..server.urls import browser_url

        return browser_url("127.0.0.1", self.port)

    @property
    def active(self) -> int:
        """Connections open through the relay now."""
        return self._live

    @property
    def buffered(self) -> int:
        """Bytes held by the relay now (on their way, or waiting out a stall)."""
        return self._call(lambda: sum(pipe.queued for pipe in self._pipes))

    @property
    def lost(self) -> int:
        """UDP datagrams dropped by ``loss`` since the start, both directions (each one a QUIC
        packet its sender has to notice and send again, or a datagram gone for good)."""
        return 0 if self.udp is None else sum(self.udp.lost.values())

    @property
    def datagrams(self) -> int:
        """UDP datagrams delivered since the start, both directions."""
        return 0 if self.udp is None else sum(self.udp.delivered.values())

    @property
    def bytes_up(self) -> int:
        """Bytes delivered client -> server since the start."""
        return self._links[Direction.UP].bytes

    @property
    def bytes_down(self) -> int:
        """Bytes delivered server -> client since the start."""
        return self._links[Direction.DOWN].bytes

    def timeline(self) -> list[Conversation]:
        """Every connection through the relay so far, dissected: HTTP requests and responses,
        Server-Sent Events, WebSocket frames, TCP control (:mod:`transport_demo.lab.dissect`).
        Needs ``capture=``; works while the relay runs and after it closed."""
        if self.capture is None:
            raise RuntimeError("no capture: make the network with capture='lesson.pcapng'")
        return self.capture.timeline()

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no connection is open through the relay, so each one's last segments
        (both FINs) are relayed and in the capture before it is read or the relay closes (closing
        earlier resets what is still open); ``False`` if some are still open after ``timeout``
        seconds."""
        deadline = time.monotonic() + timeout
        while self._live:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def set(self, **changes: Any) -> Conditions:
        """Change the conditions from now on (``net.set(delay_ms=100)``); returns the new ones.
        Bytes already on their way keep the arrival time they were given."""
        new = replace(self.conditions, **changes)
        self._call(lambda: setattr(self, "conditions", new))
        return new

    def stall(
        self, direction: Direction | str = Direction.DOWN, seconds: float | None = None
    ) -> None:
        """Stop delivering bytes in ``direction`` without closing anything: a half-open
        connection. The sender's writes still succeed until the buffers on the way are full.
        With ``seconds``, the stall ends by itself; otherwise call :meth:`resume`."""

        def stall() -> None:
            for link in self._chosen(Direction(direction)):
                link.stalled = True
                link.resumed.clear()
            if seconds is not None:
                self._loop.call_later(seconds, self._resume, Direction(direction))

        self._call(stall)

    def resume(self, direction: Direction | str = Direction.BOTH) -> None:
        """End a stall: what waited is delivered at once, in order."""
        self._call(lambda: self._resume(Direction(direction)))

    @contextlib.contextmanager
    def stalled(self, direction: Direction | str = Direction.DOWN) -> Iterator[None]:
        """``with net.stalled("down"): ...`` — a stall for the block's duration."""
        self.stall(direction)
        try:
            yield
        finally:
            self.resume(direction)

    def cut(self) -> int:
        """Reset every connection through the relay now (both sides, no goodbye); returns how
        many there were."""

        return self._call(self._cut_all)

    def outage(self, seconds: float) -> int:
        """The server becomes unreachable for ``seconds``: every connection is reset now, and
        every new one is reset at once until the time is up — to a client, as if the server
        had stopped and come back (but its state, and so every resume, survives). Returns how
        many connections were cut."""

        def down_and_cut() -> int:
            self._down_until = self._loop.time() + seconds
            return self._cut_all()

        return self._call(down_and_cut)

    def close(self) -> None:
        """Stop: reset every connection, cancel every task, close the listening socket and the
        loop, end the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._thread.is_alive() and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
        if self.capture is not None:
            self.capture.close()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.url} -> {self._target[0]}:{self._target[1]}"
        return f"<Network {self.conditions.label()}: {state}>"

    # ---- the relay, on its own loop --------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("the network is closed")
        if threading.current_thread() is self._thread:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(5)

    def _rng(self, number: int, name: str) -> random.Random:
        """A generator of its own for one direction of one connection (or of UDP): the same seed
        gives the same losses to the same traffic, whatever else runs beside it."""
        return random.Random(None if self.seed is None else f"{self.seed}/{number}/{name}")

    def _chosen(self, direction: Direction) -> list[_Link]:
        if direction is Direction.BOTH:
            return list(self._links.values())
        return [self._links[direction]]

    def _cut_all(self) -> int:
        live = self._live
        for flow in self._flows.values():  # the capture shows the reset when it happens
            self._record(flow.finish(), self._loop.time())
        for writer in list(self._open):
            writer.transport.abort()
        self.cuts += live
        return live

    def _resume(self, direction: Direction) -> None:
        for link in self._chosen(direction):
            link.stalled = False
            link.resumed.set()
        if self.udp is not None:
            self.udp.resume()

    def _link(self, up: bool) -> _Link:
        return self._links[Direction.UP if up else Direction.DOWN]

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._wall = time.time() - self._loop.time()
        try:
            self._links = {Direction.UP: _Link(), Direction.DOWN: _Link()}
            for link in self._links.values():
                link.resumed.set()
            self._loop.run_until_complete(self._bind())
        except BaseException as error:  # reported by __init__
            self._error = error
            started.set()
            return
        started.set()
        self._loop.run_forever()

    async def _bind(self) -> None:
        """Listen on TCP, and on UDP at the same port number (``udp=True``). With UDP, the port
        number has as many digits as the server's, so that the relay can put its own port in
        ``GET /webtransport``'s answer without changing its length (a ``Content-Length`` it
        would otherwise have to rewrite); a port whose UDP twin is taken is given up for
        another."""
        from .udp_relay import UdpRelay

        digits = len(str(self._target[1]))
        low, high = max(1024, 10 ** (digits - 1)), min(65535, 10**digits - 1)
        for attempt in range(100):
            port = 0 if attempt == 0 else random.randint(low, high)
            try:
                server = await asyncio.start_server(self._accept, "127.0.0.1", port)
            except OSError:
                continue
            self.port = server.sockets[0].getsockname()[1]
            if not self._udp_wanted:
                self._server = server
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if len(str(self.port)) != digits:
                    raise OSError("not as many digits as the server's port")
                sock.bind(("127.0.0.1", self.port))
            except OSError:
                sock.close()
                server.close()
                await server.wait_closed()
                continue
            self._server = server
            self.udp = UdpRelay(
                self._loop,
                sock,
                self._target,
                conditions=lambda: self.conditions,
                link=self._link,
                rngs=(self._rng(0, "udp-up"), self._rng(0, "udp-down")),
                down=lambda: self._loop.time() < self._down_until,
                record=self._record_datagram,
                max_flows=self.max_connections,
            )
            self._answer_to = f':{self.port}/wt"'.encode()
            return
        raise OSError("no free port pair (TCP and UDP) for the relay")

    async def _shutdown(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for link in self._links.values():
            link.resumed.set()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _flow(self, writer: asyncio.StreamWriter) -> TcpFlow | None:
        """The capture's view of a connection just accepted (None without a capture)."""
        if self.capture is None:
            return None
        from .capture import Endpoint, TcpFlow

        host, port = writer.get_extra_info("peername")[:2]
        return TcpFlow(Endpoint(host, port), Endpoint("127.0.0.1", self.port))

    def _record(self, packets: list[Any], at: float) -> None:
        if self.capture is not None and packets:
            self.capture.write(packets, self._wall + at)

    def _record_datagram(self, client: tuple[str, int], up: bool, data: bytes, at: float) -> None:
        """A UDP datagram as delivered, for the capture (the UDP relay calls it)."""
        if self.capture is not None:
            from .capture import Endpoint, udp_packet

            server = Endpoint("127.0.0.1", self.port)
            self._record([udp_packet(Endpoint(*client), server, up, data)], at)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = self._loop.time()
        flow = self._flow(writer)
        if accepted < self._down_until or self._live >= self.max_connections:
            # An outage (as if nothing listened here), or too many connections: reset at once.
            self.refused += 1
            if flow is not None:
                self._record(flow.refused(), accepted)
            writer.transport.abort()
            return
        if flow is not None:
            self._record(flow.handshake(), accepted)
            self._flows[writer] = flow
        self.connections += 1
        self._live += 1
        self._open.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        up = down = _Pipe(self._links[Direction.UP], 0)  # replaced once the target answers
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            self._open.add(up_writer)
            number = self.connections
            up = _Pipe(self._links[Direction.UP], self.buffer_bytes, self._rng(number, "up"))
            down = _Pipe(self._links[Direction.DOWN], self.buffer_bytes, self._rng(number, "down"))
            if self.conditions.handshake:  # SYN, SYN-ACK: the request leaves a round trip late
                up.not_before = accepted + self.conditions.rtt_ms / 1000
            self._pipes |= {up, down}
            asked = [False]  # this connection asked GET /webtransport

            def watch(data: bytes) -> bytes:
                asked[0] = asked[0] or b"GET /webtransport" in data
                return data

            def answer(data: bytes) -> bytes:
                # The session URL names the server's UDP port; clients must come to the relay's.
                if asked[0] and self._answer_to:
                    return data.replace(self._answer_from, self._answer_to)
                return data

            await self._run_pipes(
                self._read(reader, up, watch),
                self._write(up, up_writer, flow, True),
                self._read(up_reader, down, answer),
                self._write(down, writer, flow, False),
            )
        except OSError:
            pass
        finally:
            if flow is not None:
                self._flows.pop(writer, None)
                self._record(flow.finish(), self._loop.time())
            self._pipes -= {up, down}
            self._live -= 1
            for w in (writer, up_writer):
                if w is not None:
                    self._open.discard(w)
                    w.transport.abort()

    async def _run_pipes(self, *jobs: Coroutine[Any, Any, None]) -> None:
        """Run the four halves of a connection until all end or one fails; never leave one
        behind (a writer waiting out a stall would otherwise outlive its connection)."""
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _arrival(self, pipe: _Pipe, size: int, now: float) -> float:
        """When a segment read now arrives on the other side: queue for the link, send it,
        travel ``delay ± jitter``."""
        c, link = self.conditions, pipe.link
        start = max(now, link.free_at, pipe.not_before)
        sent = start + (size * 8 / (c.bandwidth_kbit * 1000) if c.bandwidth_kbit else 0.0)
        link.free_at = sent
        delay = c.delay_ms + (self._random.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0)
        return sent + max(0.0, delay) / 1000

    async def _read(
        self, reader: asyncio.StreamReader, pipe: _Pipe, edit: Callable[[bytes], bytes]
    ) -> None:
        try:
            while True:
                while pipe.queued >= pipe.limit:  # full: stop reading, the sender feels it
                    pipe.changed.clear()
                    await pipe.changed.wait()
                data = edit(await reader.read(65536))
                now = self._loop.time()
                if not data:
                    pipe.put(self._arrival(pipe, 0, now), None)
                    return
                for i in range(0, len(data), SEGMENT):
                    segment = data[i : i + SEGMENT]
                    arrival = self._arrival(pipe, len(segment), now)
                    late = self.conditions.retransmission(pipe.rng)
                    if late:  # lost, sent again an RTO later; put() holds every later one behind
                        self.retransmitted += 1
                    pipe.put(arrival + late, segment)
        except OSError:
            pipe.put(pipe.last_arrival, None)

    async def _write(
        self, pipe: _Pipe, writer: asyncio.StreamWriter, flow: TcpFlow | None, up: bool
    ) -> None:
        while True:
            if not pipe.queue:
                pipe.changed.clear()
                await pipe.changed.wait()
                continue
            if pipe.link.stalled:
                await pipe.link.resumed.wait()
                continue
            wait = pipe.queue[0][0] - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            now = self._loop.time()
            segments, end = pipe.take_due(now)
            if segments:
                data = b"".join(segments)
                pipe.link.bytes += len(data)
                if flow is not None:  # first: whoever has read the bytes finds them recorded
                    self._record([flow.data(up, segment) for segment in segments], now)
                writer.write(data)
                await writer.drain()
            if end:
                if flow is not None:
                    self._record([flow.fin(up)], now)
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()  # a half close, passed on
                return


def network(
    target: str | int | _HasUrl,
    *,
    delay_ms: float = 0.0,
    jitter_ms: float = 0.0,
    bandwidth_kbit: float | None = None,
    handshake: bool = True,
    max_connections: int = 256,
    buffer_bytes: int = 1 << 20,
    seed: int | None = None,
    capture: str | Path | None = None,
    capture_limit: int | None = None,
    loss: float = 0.0,
    rto_ms: float = RTO_MS,
    udp: bool = True,
) -> Network:
    """A shaped relay to ``target``, started: ``with network(server, delay_ms=50) as net:``
    then connect to ``net.url``. See :class:`Conditions` for what each setting does.
    ``capture="lesson.pcapng"`` writes what crosses it for Wireshark (at most ``capture_limit``
    bytes, 64 MiB by default; :mod:`transport_demo.lab.capture`). ``loss=0.02`` loses one packet
    in fifty each way (``seed=`` makes it reproducible): UDP datagrams for good, TCP segments for
    ``rto_ms``. ``udp=False`` relays TCP only (:mod:`transport_demo.lab.udp_relay`)."""
    conditions = Conditions(
        delay_ms=delay_ms,
        jitter_ms=jitter_ms,
        bandwidth_kbit=bandwidth_kbit,
        handshake=handshake,
        loss=loss,
        rto_ms=rto_ms,
    )
    return Network(
        target,
        conditions,
        max_connections=max_connections,
        buffer_bytes=buffer_bytes,
        seed=seed,
        capture=capture,
        capture_limit=capture_limit,
        udp=udp,
    )
