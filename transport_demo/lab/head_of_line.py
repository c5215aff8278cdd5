"""Head-of-line blocking, measured: several logical streams over ONE WebSocket against the same
streams as separate QUIC streams of ONE WebTransport session, through the same lossy network.

::

    from transport_demo.lab.head_of_line import compare_head_of_line
    result = compare_head_of_line(loss=0.02, streams=4, seconds=5, seed=1)
    result                      # the table: per transport, per stream, delay p50/p99/max
    result.websocket.held       # messages that waited for another stream's lost packet
    plot_head_of_line(result)   # every message's delay against the time it was sent

What runs. Two small servers of the instrument's own, on one port number (TCP for the WebSocket,
UDP for QUIC), behind one :func:`~transport_demo.lab.network.network` with ``delay_ms`` each way
and ``loss``. Each sends ``streams`` logical streams, one message per stream every
``interval_ms``, the streams staggered evenly within the interval (so that no two messages share a
packet: a packet lost holds one message), each message carrying the time it was sent:

- the WebSocket server writes every stream's messages on its one connection (one TCP byte
  stream: a lost segment holds every message behind it, whatever its stream);
- the WebTransport server opens one unidirectional QUIC stream per logical stream (the server
  opens them: a stream the page opens is not seen until the page writes, and these carry data
  one way), and also sends one datagram per interval (lost ones stay lost: counted).

The clients (in the same process, so sent and received times are on one clock) record when each
message arrived. Delay is arrival minus sending; ``delay_ms`` of it is the network's. A message is
*late* when it took more than ``delay_ms + LATE_MS``; late messages whose sending times overlap the
wait of an earlier late message form one episode, caused by the stream of its first message; a late
message of another stream in the episode was **held by another stream's loss** — head-of-line
blocking. On TCP nearly every episode holds every stream; on QUIC only the stream that lost a
packet waits (RFC 9000 §2: QUIC keeps no order between streams; §2.2: each one in order), and
the count stays near 0 (two losses on two streams at once are counted too).

The main server's session keeps its one stream (its wire contract is unchanged): these servers are
the instrument's alone, started and stopped by each call, in a thread with an event loop of its
own (so a notebook cell, where a loop is already running, can call it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DatagramReceived, H3Event, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ProtocolNegotiated, QuicEvent
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from ..server.certificates import make_certificate
from ..server.h3_endpoint import WebTransportEndpoint, WebTransportSession
from ..server.wt_framing import LineBuffer
from .network import RTO_MS, network

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LATE_MS",
    "HeadOfLine",
    "Message",
    "StreamFigures",
    "TransportRun",
    "compare_head_of_line",
    "held_by_another",
    "plot_head_of_line",
]

LATE_MS = 25.0
"""How much longer than the network's delay a message may take before it counts as late: above a
shared machine's scheduling noise, below QUIC's recovery of one lost packet (about one round trip)
and far below TCP's retransmission timeout (:data:`~transport_demo.lab.network.RTO_MS`)."""
_GRACE = 3.0  # seconds the clients wait for stragglers after the last message was sent


@dataclass(frozen=True)
class Message:
    """One message as the client saw it."""

    stream: int
    number: int
    sent: float
    """When the server sent it (``time.monotonic()``, seconds)."""
    received: float

    @property
    def delay_ms(self) -> float:
        """Arrival minus sending, in milliseconds."""
        return (self.received - self.sent) * 1000


@dataclass(frozen=True)
class StreamFigures:
    """One logical stream's delivery."""

    stream: int
    sent: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    late: int
    """Messages that took more than the network's delay plus :data:`LATE_MS`."""
    held: int
    """Late messages that waited for another stream's loss (head-of-line blocking)."""


@dataclass(frozen=True)
class TransportRun:
    """One transport's run: its streams' figures, and the datagrams' (WebTransport only)."""

    transport: str
    streams: list[StreamFigures]
    datagrams_sent: int = 0
    datagrams_received: int = 0
    datagram_p50_ms: float = math.nan

    @property
    def held(self) -> int:
        """Messages held by another stream's loss, all streams together."""
        return sum(s.held for s in self.streams)

    @property
    def late(self) -> int:
        """Late messages, all streams together."""
        return sum(s.late for s in self.streams)

    @property
    def p99_ms(self) -> float:
        """The worst stream's p99 delay."""
        return max((s.p99_ms for s in self.streams), default=math.nan)

    @property
    def datagrams_lost(self) -> int:
        """Datagrams sent that never arrived (none is sent again)."""
        return self.datagrams_sent - self.datagrams_received


@dataclass(frozen=True)
class HeadOfLine:
    """The comparison :func:`compare_head_of_line` returns; ``repr`` is its table."""

    loss: float
    streams: int
    seconds: float
    delay_ms: float
    interval_ms: float
    seed: int | None
    websocket: TransportRun
    webtransport: TransportRun
    lost_datagrams: int
    """UDP datagrams (QUIC packets) the network dropped, both directions."""
    retransmitted: int
    """TCP segments the network "lost" and delivered an RTO late."""
    messages: dict[str, list[Message]] = field(default_factory=dict, repr=False)
    """Every message each transport delivered, for plots (``"websocket"``, ``"webtransport"``)."""

    def runs(self) -> Iterator[TransportRun]:
        """The WebSocket's run, then WebTransport's."""
        yield self.websocket
        yield self.webtransport

    def table(self) -> str:
        """Per transport and stream: messages, delay p50/p99/max, late, held by another."""
        rate = 1000 / self.interval_ms
        lines = [
            f"{self.loss * 100:g} % loss, {self.delay_ms:g} ms each way, {self.streams} streams "
            f"x {rate:g} msg/s, {self.seconds:g} s (seed {self.seed}); TCP segments late by an "
            f"RTO: {self.retransmitted}, QUIC packets lost: {self.lost_datagrams}",
            f"{'transport':<13}{'stream':>7}{'msgs':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'late':>6}{'held by another':>17}",
        ]
        for run in self.runs():
            for s in run.streams:
                lines.append(
                    f"{run.transport:<13}{s.stream:>7}{s.received:>7}{s.p50_ms:>9.1f}"
                    f"{s.p99_ms:>9.1f}{s.max_ms:>9.1f}{s.late:>6}{s.held:>17}"
                )
        w = self.webtransport
        lines.append(
            f"datagrams: {w.datagrams_sent} sent, {w.datagrams_received} arrived "
            f"({w.datagrams_lost} lost, never sent again), p50 {w.datagram_p50_ms:.1f} ms"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data (no messages), for JSON (a figure with no sample is
        ``None``, not NaN)."""
        data = asdict(self)
        data.pop("messages")
        for run in ("websocket", "webtransport"):
            data[run]["held"] = getattr(self, run).held
        result: dict[str, Any] = _no_nan(data)
        return result

    def __repr__(self) -> str:
        return self.table()


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def compare_head_of_line(
    loss: float = 0.02,
    streams: int = 4,
    seconds: float = 5.0,
    seed: int | None = 1,
    *,
    delay_ms: float = 20.0,
    interval_ms: float = 20.0,
    rto_ms: float = RTO_MS,
) -> HeadOfLine:
    """Send ``streams`` logical streams for ``seconds`` over one WebSocket and over one
    WebTransport session at once, through one network losing ``loss`` of its packets each way,
    ``delay_ms`` each way; per stream, how long messages took. Takes about ``seconds`` plus one
    or two. See the module's docstring for what is measured."""
    if not 1 <= streams <= 16:
        raise ValueError("streams: 1 to 16")
    if not 0 < seconds <= 60 or interval_ms <= 0:
        raise ValueError("seconds: above 0, at most 60; interval_ms above 0")
    outcome: list[HeadOfLine] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(
                asyncio.run(_compare(loss, streams, seconds, seed, delay_ms, interval_ms, rto_ms))
            )
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="transport-demo-head-of-line", daemon=True)
    worker.start()
    worker.join(seconds + 60)
    if failure:
        raise failure[0]
    if not outcome:
        raise TimeoutError("the head-of-line run did not finish")
    return outcome[0]


# ---- the servers -----------------------------------------------------------------------------


class _Schedule:
    """When each message is due: stream ``i``'s ``n``-th at ``n * interval + i * interval / K``."""

    def __init__(self, streams: int, seconds: float, interval_ms: float) -> None:
        self.streams = streams
        self.interval = interval_ms / 1000
        self.count = max(1, int(seconds / self.interval))

    def slots(self) -> Iterator[tuple[float, int, int]]:
        """(offset in seconds, stream, number), in time order."""
        for n in range(self.count):
            for i in range(self.streams):
                yield n * self.interval + i * self.interval / self.streams, i, n


def _line(stream: int, number: int) -> bytes:
    return json.dumps({"s": stream, "n": number, "t": time.monotonic()}).encode() + b"\n"


async def _each_slot(schedule: _Schedule, send: Callable[[int, int], Awaitable[bool]]) -> None:
    """Call ``send(stream, number)`` as each slot falls due (from now); stop when it says no."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for offset, stream, number in schedule.slots():
        wait = start + offset - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if not await send(stream, number):
            return


class _WebSocketServer:
    """Every logical stream on one WebSocket."""

    def __init__(self, schedule: _Schedule, started: asyncio.Event) -> None:
        self.schedule = schedule
        self.started = started

    async def handle(self, connection: ServerConnection) -> None:
        await self.started.wait()

        async def send(stream: int, number: int) -> bool:
            await connection.send(_line(stream, number).decode())
            return True

        with contextlib.suppress(ConnectionClosed):
            await _each_slot(self.schedule, send)
            await connection.wait_closed()


class _WebTransportServer:
    """One unidirectional QUIC stream per logical stream, and a datagram per interval."""

    def __init__(self, schedule: _Schedule, started: asyncio.Event) -> None:
        self.schedule = schedule
        self.started = started
        self.datagrams_sent = 0

    async def handle(self, session: WebTransportSession) -> None:
        session.accept()
        ids = [session.open_unidirectional() for _ in range(self.schedule.streams)]
        await self.started.wait()

        async def send(stream: int, number: int) -> bool:
            if stream == 0:
                datagram = json.dumps({"d": number, "t": time.monotonic()}).encode()
                if session.send_datagram(datagram):
                    self.datagrams_sent += 1
            return session.send_on(ids[stream], _line(stream, number))

        await _each_slot(self.schedule, send)
        while not session.ended:
            await asyncio.sleep(0.05)


# ---- the clients -----------------------------------------------------------------------------


class _Received:
    """What a client got: messages by arrival, datagrams' delays."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.messages: list[Message] = []
        self.datagram_delays: list[float] = []
        self.done = asyncio.Event()

    def line(self, raw: bytes) -> None:
        now = time.monotonic()
        data = json.loads(raw)
        self.messages.append(Message(int(data["s"]), int(data["n"]), float(data["t"]), now))
        if len(self.messages) >= self.expected:
            self.done.set()


class _QuicClient(QuicConnectionProtocol):
    """A WebTransport session's receiving side: every stream's lines, and datagrams."""

    def __init__(self, *args: Any, received: _Received, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = received
        self.http: H3Connection | None = None
        self.session_id: int | None = None
        self.ready = asyncio.Event()
        self._lines: dict[int, LineBuffer] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.http = H3Connection(self._quic, enable_webtransport=True)
        if self.http is not None:
            for http_event in self.http.handle_event(event):
                self._http_event(http_event)
            if self.http.received_settings is not None:
                self.ready.set()

    def _http_event(self, event: H3Event) -> None:
        if isinstance(event, WebTransportStreamDataReceived):
            lines = self._lines.setdefault(event.stream_id, LineBuffer(1 << 16))
            for line in lines.feed(event.data):
                self.received.line(line)
        elif isinstance(event, DatagramReceived):
            data = json.loads(event.data)
            self.received.datagram_delays.append((time.monotonic() - float(data["t"])) * 1000)


async def _websocket_client(port: int, received: _Received, deadline: float) -> None:
    async with ws_connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        loop = asyncio.get_running_loop()
        while not received.done.is_set():
            try:
                async with asyncio.timeout(max(0.01, deadline - loop.time())):
                    raw = await ws.recv()
            except TimeoutError:
                return
            received.line(raw if isinstance(raw, bytes) else raw.encode())


async def _webtransport_client(
    port: int, received: _Received
) -> tuple[asyncio.DatagramTransport, _QuicClient]:
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
    )
    configuration.verify_mode = ssl.CERT_NONE  # the instrument's own certificate, made just now
    configuration.server_name = "127.0.0.1"
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _QuicClient(QuicConnection(configuration=configuration), received=received),
        remote_addr=("127.0.0.1", port),
    )
    try:
        async with asyncio.timeout(10):
            protocol.connect(("127.0.0.1", port))
            await protocol.wait_connected()
            await protocol.ready.wait()
    except BaseException:
        transport.close()
        raise
    assert protocol.http is not None
    session_id = protocol._quic.get_next_available_stream_id()
    protocol.session_id = session_id
    protocol.http.send_headers(
        session_id,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", f"127.0.0.1:{port}".encode()),
            (b":path", b"/head-of-line"),
            (b":protocol", b"webtransport"),
        ],
    )
    protocol.transmit()
    return transport, protocol


# ---- the run ---------------------------------------------------------------------------------


async def _servers(
    ws: _WebSocketServer, wt: _WebTransportServer
) -> tuple[Any, WebTransportEndpoint, int]:
    """Both servers on one port number (TCP and UDP): one relay carries both."""
    certificate = make_certificate(["127.0.0.1"])
    for _ in range(50):
        tcp = await ws_serve(ws.handle, "127.0.0.1", 0, compression=None)
        port = int(next(iter(tcp.sockets)).getsockname()[1])
        endpoint = WebTransportEndpoint(wt.handle, certificate)
        try:
            await endpoint.start("127.0.0.1", port)
        except OSError:
            tcp.close()
            await tcp.wait_closed()
            continue
        return tcp, endpoint, port
    raise OSError("no port free on both TCP and UDP")


async def _compare(
    loss: float,
    streams: int,
    seconds: float,
    seed: int | None,
    delay_ms: float,
    interval_ms: float,
    rto_ms: float,
) -> HeadOfLine:
    schedule = _Schedule(streams, seconds, interval_ms)
    started = asyncio.Event()
    ws_server = _WebSocketServer(schedule, started)
    wt_server = _WebTransportServer(schedule, started)
    tcp, endpoint, port = await _servers(ws_server, wt_server)
    expected = schedule.count * streams
    ws_got, wt_got = _Received(expected), _Received(expected)
    net = await asyncio.to_thread(
        network, port, delay_ms=delay_ms, loss=0.0, seed=seed, rto_ms=rto_ms
    )
    quic: tuple[asyncio.DatagramTransport, _QuicClient] | None = None
    ws_task: asyncio.Task[None] | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds + 10 + _GRACE
        ws_task = asyncio.create_task(_websocket_client(net.port, ws_got, deadline))
        quic = await _webtransport_client(net.port, wt_got)
        async with asyncio.timeout(10):
            while endpoint.sessions < 1 or not tcp.connections:
                await asyncio.sleep(0.01)
        await asyncio.to_thread(net.set, loss=loss)  # loss from here: the handshakes are not timed
        started.set()
        end = loop.time() + seconds + _GRACE
        for got in (ws_got, wt_got):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.01, end - loop.time())):
                    await got.done.wait()
        return HeadOfLine(
            loss=loss,
            streams=streams,
            seconds=seconds,
            delay_ms=delay_ms,
            interval_ms=interval_ms,
            seed=seed,
            websocket=_figures("websocket", ws_got, schedule, delay_ms),
            webtransport=_figures(
                "webtransport", wt_got, schedule, delay_ms, wt_server.datagrams_sent
            ),
            lost_datagrams=net.lost,
            retransmitted=net.retransmitted,
            messages={"websocket": ws_got.messages, "webtransport": wt_got.messages},
        )
    finally:
        if quic is not None:
            quic[1].close()  # CONNECTION_CLOSE, then the socket
            quic[0].close()
        if ws_task is not None:
            ws_task.cancel()
            await asyncio.gather(ws_task, return_exceptions=True)
        await endpoint.close(timeout=0.2)
        tcp.close()
        await tcp.wait_closed()
        await asyncio.to_thread(net.close)


# ---- the figures -----------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def held_by_another(messages: list[Message], late_after_ms: float) -> dict[int, tuple[int, int]]:
    """Per stream: (late messages, late messages held by another stream's loss), by episodes
    (the module's docstring)."""
    late = sorted((m for m in messages if m.delay_ms > late_after_ms), key=lambda m: m.sent)
    counts: dict[int, list[int]] = {}
    episode_end, owner = -math.inf, -1
    for m in late:
        if m.sent > episode_end:  # sent after every earlier late message arrived: a new loss
            owner = m.stream
        tally = counts.setdefault(m.stream, [0, 0])
        tally[0] += 1
        if m.stream != owner:
            tally[1] += 1
        episode_end = max(episode_end, m.received)
    return {stream: (t[0], t[1]) for stream, t in counts.items()}


def _figures(
    name: str, got: _Received, schedule: _Schedule, delay_ms: float, datagrams_sent: int = 0
) -> TransportRun:
    tallies = held_by_another(got.messages, delay_ms + LATE_MS)
    figures = []
    for stream in range(schedule.streams):
        delays = [m.delay_ms for m in got.messages if m.stream == stream]
        late, held = tallies.get(stream, (0, 0))
        figures.append(
            StreamFigures(
                stream=stream,
                sent=schedule.count,
                received=len(delays),
                p50_ms=statistics.median(delays) if delays else math.nan,
                p99_ms=_percentile(delays, 0.99),
                max_ms=max(delays, default=math.nan),
                late=late,
                held=held,
            )
        )
    datagrams = got.datagram_delays
    return TransportRun(
        transport=name,
        streams=figures,
        datagrams_sent=datagrams_sent,
        datagrams_received=len(datagrams),
        datagram_p50_ms=statistics.median(datagrams) if datagrams else math.nan,
    )


def plot_head_of_line(result: HeadOfLine) -> Figure:
    """Every message's delay against when it was sent, one colour per stream, the WebSocket
    above WebTransport (matplotlib; returns the figure)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, sharex=True, sharey=True, figsize=(9, 5))
    for ax, run in zip(axes, result.runs(), strict=True):
        messages = result.messages.get(run.transport, [])
        start = min((m.sent for m in messages), default=0.0)
        for stream in range(result.streams):
            mine = [m for m in messages if m.stream == stream]
            ax.scatter(
                [m.sent - start for m in mine],
                [m.delay_ms for m in mine],
                s=6,
                label=f"stream {stream}",
            )
        ax.set_title(f"{run.transport}: {run.held} messages held by another stream's loss")
        ax.set_ylabel("delay (ms)")
    axes[-1].set_xlabel("sent at (s)")
    axes[0].legend(loc="upper right", fontsize="small")
    figure.suptitle(f"{result.loss * 100:g} % loss, {result.delay_ms:g} ms each way")
    figure.tight_layout()
    return figure
