"""Measuring the transports on this machine: push latency, bytes and requests per message, and the
throughput of a burst. The comparison notebook runs these at class size; the benchmark at scale.

Latency is taken from ``hub.publish`` (in this process, so on the same clock) to the moment the
client hands the event to its reader. Bytes are counted by a small TCP relay between client and
server, both directions, headers and framing included.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from .clients import CLIENTS, BaseClient
from .clients.base import Event
from .errors import QueueFull
from .server import RunningServer

TRANSPORTS = tuple(CLIENTS)


class CountingRelay:
    """A TCP relay on 127.0.0.1 that counts the bytes going through it (both directions)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()


@dataclass
class Summary:
    transport: str
    messages: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    seconds: float
    messages_per_second: float
    bytes_per_message: float
    requests_per_message: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, int(q * 10) - 1)]


async def _connected(transport: str, url: str) -> BaseClient:
    client = CLIENTS[transport](url, backoff_initial=0.05, max_unread=100_000)
    await client.start()
    await client.wait_connected(timeout=10)
    return client


async def _receive(client: BaseClient, count: int, timeout: float) -> list[tuple[float, Event]]:
    """The next ``count`` durable messages with their receive time (perf_counter)."""
    got: list[tuple[float, Event]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            event = await client.next_event(timeout)
            if event.get("type") == "message":
                got.append((time.perf_counter(), event))
    return got


async def _publish_all(server: RunningServer, connection_id: str, count: int) -> None:
    """Publish ``count`` messages as fast as the connection's queue takes them: on
    ``queue_full`` wait a moment and retry (backpressure), so nothing is refused for good."""
    sent = 0
    while sent < count:
        try:
            server.hub.publish(connection_id, "x" * 32)
            sent += 1
        except QueueFull:
            await asyncio.sleep(0.001)


async def measure(
    server: RunningServer,
    transport: str,
    *,
    messages: int = 200,
    rate: float = 200.0,
    burst: int = 1000,
    timeout: float = 60.0,
) -> Summary:
    """Push ``messages`` at ``rate`` per second and time each; then a ``burst`` as fast as
    possible for throughput, bytes and requests per message."""
    async with CountingRelay(server.port) as relay:
        client = await _connected(transport, relay.url)
        try:
            cid = client.connection_id
            assert cid is not None
            sent_at: dict[int, float] = {}
            receiver = asyncio.create_task(_receive(client, messages, timeout))
            interval = 1.0 / rate
            next_at = time.perf_counter()
            for _ in range(messages):
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[server.hub.publish(cid, "x" * 32)] = time.perf_counter()
                next_at += interval
            steady = await receiver
            latencies = [(at - sent_at[event["seq"]]) * 1000 for at, event in steady]

            bytes_before, requests_before = relay.bytes, client.stats.requests
            started = time.perf_counter()
            receiver = asyncio.create_task(_receive(client, burst, timeout))
            await _publish_all(server, cid, burst)
            await receiver
            seconds = time.perf_counter() - started
            requests = max(1, client.stats.requests - requests_before)
            if transport != "long-polling":
                requests = 1  # the one stream or socket carried them all
            return Summary(
                transport=transport,
                messages=messages,
                p50_ms=round(percentile(latencies, 50), 3),
                p95_ms=round(percentile(latencies, 95), 3),
                p99_ms=round(percentile(latencies, 99), 3),
                seconds=round(seconds, 4),
                messages_per_second=round(burst / seconds, 1),
                bytes_per_message=round((relay.bytes - bytes_before) / burst, 1),
                requests_per_message=round(requests / burst, 4),
            )
        finally:
            await client.close()


async def compare(server: RunningServer, **options: Any) -> list[Summary]:
    """:func:`measure` for each transport in turn (never at once: they would share the CPU)."""
    return [await measure(server, transport, **options) for transport in TRANSPORTS]


def plot(summaries: list[Summary]) -> Any:
    """Three bar charts: latency (p50, p99), bytes per message, throughput. Returns the figure."""
    import matplotlib.pyplot as plt

    names = [s.transport for s in summaries]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    x = range(len(names))
    axes[0].bar([i - 0.2 for i in x], [s.p50_ms for s in summaries], 0.4, label="p50")
    axes[0].bar([i + 0.2 for i in x], [s.p99_ms for s in summaries], 0.4, label="p99")
    axes[0].set_title("push latency (ms)")
    axes[0].legend()
    axes[1].bar(list(x), [s.bytes_per_message for s in summaries], color="#9b59b6")
    axes[1].set_title("bytes on the wire per message")
    axes[2].bar(list(x), [s.messages_per_second for s in summaries], color="#27a55a")
    axes[2].set_title("burst throughput (messages/s)")
    for axis in axes:
        axis.set_xticks(list(x), names)
    fig.tight_layout()
    return fig


def as_markdown(summaries: list[Summary]) -> str:
    """The figures as a Markdown table (``IPython.display.Markdown(as_markdown(results))``)."""
    rows = [
        "| transport | p50 ms | p99 ms | burst msg/s | bytes/msg | requests/msg |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {s.transport} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.messages_per_second:,.0f} "
        f"| {s.bytes_per_message:.0f} | {s.requests_per_message:.4f} |"
        for s in summaries
    ]
    return "\n".join(rows)
