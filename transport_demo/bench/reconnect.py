"""What a reconnect costs: the time from a cut to the first message after it, per transport.

One of our clients (``transport_demo.clients``) connects through a shaped network
(:class:`~transport_demo.lab.network.Network`); the relay resets the connection; at the same
instant the server is told to push one message.
The client notices the reset at once (an RST), reconnects, resumes (``last_seq`` or
``Last-Event-ID``) and receives the message: that time is the reconnect's price in round trips
(a new TCP handshake, then the request or the WebSocket handshake) plus the server's work. The
clients' backoff is set to a millisecond so that it measures the protocol, not the retry policy
(the clients wait 0.25-0.5 s before a first retry by default; a browser's ``EventSource`` waits
the stream's ``retry:``, 1 s from this server). A silent cut — no RST, a half-open connection —
costs the time to notice it on top: up to a heartbeat interval plus the client's margin.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from ..clients import CLIENTS, BaseClient, Event
from ..lab.network import Network
from ..server.protocol import EventType
from .scenarios import SIZE, Pusher

__all__ = ["Reconnect", "reconnect_cost"]


@dataclass
class Reconnect:
    """Milliseconds from a cut to the first message after it, over ``count`` cuts."""

    count: int
    p50_ms: float
    max_ms: float
    requests_per_reconnect: float
    lost: int  # messages that never came (gaps)
    doubled: int  # messages that came twice (duplicates the client dropped)


async def _once(
    client: BaseClient, arrivals: asyncio.Queue[int], net: Network, pusher: Pusher
) -> float:
    while not arrivals.empty():
        arrivals.get_nowait()
    assert client.connection_id is not None
    cut_at = time.monotonic_ns()
    await asyncio.to_thread(net.cut)
    await pusher.push(client.connection_id, 1, 0, SIZE)
    received = await asyncio.wait_for(arrivals.get(), 30)
    return (received - cut_at) / 1e6


async def reconnect_cost(
    transport: str, pusher: Pusher, net: Network, *, cuts: int = 3
) -> Reconnect:
    """Cut ``cuts`` times and time each way back to a message (see the module's docstring)."""
    arrivals: asyncio.Queue[int] = asyncio.Queue()

    def on_event(event: Event) -> None:
        if event.get("type") == EventType.MESSAGE and not event.get("client"):
            arrivals.put_nowait(time.monotonic_ns())

    client = CLIENTS[transport](net.url, backoff_initial=0.001, backoff_max=0.01, on_event=on_event)
    times = []
    try:
        await client.start()
        await client.wait_connected(timeout=30)
        await pusher.push(client.connection_id or "", 1, 0, SIZE)  # the path is live
        await asyncio.wait_for(arrivals.get(), 30)
        requests = client.stats.requests
        for _ in range(cuts):
            times.append(await _once(client, arrivals, net, pusher))
        made = client.stats.requests - requests
    finally:
        await client.close()
    return Reconnect(
        count=len(times),
        p50_ms=round(statistics.median(times), 3),
        max_ms=round(max(times), 3),
        requests_per_reconnect=round(made / cuts, 2),
        lost=client.stats.gaps,
        doubled=client.stats.duplicates,
    )
