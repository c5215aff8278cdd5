"""The measurements on one probe: push latency, round trip, burst throughput (with bytes and
requests per message counted by a relay), and the bytes of one event at a time (:func:`wire`)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from .probes import Probe
from .relay import CountingRelay

__all__ = [
    "Latency",
    "Pusher",
    "Throughput",
    "Wire",
    "burst",
    "collect",
    "counting",
    "opened",
    "percentile",
    "push_latency",
    "round_trip",
    "wire",
]

SIZE = 64  # characters per text, every server, every scenario


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, int(q * 10) - 1)]


class Pusher(Protocol):
    port: int

    async def push(self, to: str, n: int, rate: float, size: int) -> None: ...


@dataclass
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: list[float]) -> Latency:
        return cls(
            count=len(values_ms),
            p50_ms=round(percentile(values_ms, 50), 3),
            p95_ms=round(percentile(values_ms, 95), 3),
            p99_ms=round(percentile(values_ms, 99), 3),
            max_ms=round(max(values_ms, default=0.0), 3),
        )


@dataclass
class Throughput:
    messages: int
    seconds: float
    messages_per_second: float
    bytes_per_message: float
    requests_per_message: float


@dataclass
class Wire:
    """Bytes of events pushed one at a time (each its own chunk, frame or poll), both ways."""

    events: int
    protocol: str  # what the probe spoke: "HTTP/1.1", "HTTP/2" or "websocket"
    bytes_per_event: float  # on the TCP socket: TLS records included
    http_bytes_per_event: float | None  # above TLS: HTTP/1.1 heads and chunks, or HTTP/2 frames
    requests_per_event: float
    bytes_per_request: float | None  # above TLS, per request: a long poll's cycle (request+answer)


@contextlib.asynccontextmanager
async def opened(probe: Probe) -> AsyncIterator[Probe]:
    """An open probe with its receiver running; closed on the way out."""
    await probe.open()
    receiver = asyncio.create_task(probe.receive())
    try:
        yield probe
    finally:
        receiver.cancel()
        await probe.close()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver


async def collect(
    probe: Probe, pusher: Pusher, n: int, rate: float, timeout: float
) -> list[tuple[int, int]]:
    """Have the server push ``n`` texts; return (pushed_ns, received_ns) for each."""
    got: list[tuple[int, int]] = []
    done = asyncio.get_running_loop().create_future()

    def on_text(text: str, at: int) -> None:
        got.append((int(text.split(" ", 1)[0]), at))
        if len(got) == n and not done.done():
            done.set_result(None)

    probe.on_text = on_text
    await pusher.push(probe.push_to, n, rate, SIZE)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        raise TimeoutError(f"{len(got)} of {n} pushed texts arrived in {timeout:.0f} s") from None
    return got


async def push_latency(
    probe: Probe, pusher: Pusher, *, n: int = 2000, rate: float = 500.0, warmup: int = 50
) -> Latency:
    """Server push to client receipt, ``n`` texts at ``rate`` per second (after a warm-up)."""
    async with opened(probe):
        await collect(probe, pusher, warmup, rate, 30)
        got = await collect(probe, pusher, n, rate, 30 + 3 * n / rate)
    return Latency.of([(at - pushed) / 1e6 for pushed, at in got])


async def round_trip(probe: Probe, *, n: int = 1000, warmup: int = 20) -> Latency:
    """Client send to the echo's receipt, one at a time."""
    times: list[float] = []
    async with opened(probe):
        for i in range(warmup + n):
            waiting: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            text = f"echo-{i}"

            def on_text(
                received: str, at: int, text: str = text, waiting: asyncio.Future[int] = waiting
            ) -> None:
                if received == text and not waiting.done():
                    waiting.set_result(at)

            probe.on_text = on_text
            sent = time.monotonic_ns()
            await probe.send(text)
            received_at = await asyncio.wait_for(waiting, 10)
            if i >= warmup:
                times.append((received_at - sent) / 1e6)
    return Latency.of(times)


@contextlib.asynccontextmanager
async def counting(
    probe_type: type[Probe], port: int
) -> AsyncIterator[tuple[Probe, Callable[[], int]]]:
    """An open probe of ``probe_type`` and a function giving the bytes its connections carried so
    far, both ways: counted by a :class:`CountingRelay` in front of ``port`` (TCP payload), or
    by the probe itself where a TCP relay cannot carry it (QUIC: UDP payload)."""
    if probe_type.socket_bytes is not Probe.socket_bytes:  # it counts its own
        probe = probe_type(port)
        async with opened(probe):
            yield probe, lambda: probe.socket_bytes() or 0
        return
    async with CountingRelay(port) as relay:
        probe = probe_type(int(relay.url.rsplit(":", 1)[1]))
        async with opened(probe):
            yield probe, lambda: relay.bytes


async def burst(
    probe_type: type[Probe],
    pusher: Pusher,
    *,
    n: int = 10_000,
    counted: int = 1000,
    port: int | None = None,
) -> Throughput:
    """``n`` texts pushed back to back to one client: messages per second, first push to last
    receipt. Then ``counted`` more through a counting relay for bytes and requests per message.
    The client connects to ``port`` (default: the server's; a shaped network's in front of it)."""
    port = port or pusher.port
    async with opened(probe_type(port)) as probe:
        await collect(probe, pusher, 50, 0, 30)
        got = await collect(probe, pusher, n, 0, 120)
    seconds = (got[-1][1] - got[0][0]) / 1e9
    async with counting(probe_type, port) as (probe, on_socket):
        await collect(probe, pusher, 50, 0, 30)
        bytes_before, requests_before = on_socket(), probe.requests
        await collect(probe, pusher, counted, 0, 60)
        await asyncio.sleep(0.05)  # the last acknowledgement (a poll, a pong, an ACK) goes out
        sent_bytes, requests = on_socket() - bytes_before, probe.requests - requests_before
    return Throughput(
        messages=n,
        seconds=round(seconds, 4),
        messages_per_second=round(n / seconds, 1),
        bytes_per_message=round(sent_bytes / counted, 1),
        # A stream makes no request after it is open: 0 here means "one for its whole life".
        requests_per_message=round(requests / counted, 4),
    )


async def wire(
    probe_type: type[Probe], pusher: Pusher, *, n: int = 500, rate: float = 100.0, port: int
) -> Wire:
    """``n`` texts pushed at ``rate`` per second (slow enough that each travels alone: one SSE
    chunk or DATA frame, one poll's answer) through a :class:`CountingRelay` in front of ``port``:
    the socket's bytes, and the bytes the probe's HTTP client wrote and read above TLS."""
    async with counting(probe_type, port) as (probe, on_socket):
        await collect(probe, pusher, 10, rate, 30)
        before, http_before, requests_before = on_socket(), probe.wire_bytes(), probe.requests
        await collect(probe, pusher, n, rate, 30 + 3 * n / rate)
        await asyncio.sleep(0.05)  # the last acknowledgement (a poll, an ACK) goes out
        sent, http_after = on_socket() - before, probe.wire_bytes()
        requests = probe.requests - requests_before
    http = None if http_after is None or http_before is None else http_after - http_before
    return Wire(
        events=n,
        protocol=probe.version,
        bytes_per_event=round(sent / n, 1),
        http_bytes_per_event=None if http is None else round(http / n, 1),
        requests_per_event=round(requests / n, 3),
        bytes_per_request=round(http / requests, 1) if http is not None and requests else None,
    )
