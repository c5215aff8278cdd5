"""What every benchmark probe is: one measuring connection that reports the texts it receives
(``on_text``), its heartbeats (``beat``, and how late they came: ``lags_since``), its requests and
the connections under it. The probes themselves are in :mod:`.probes` (TCP) and
:mod:`.h3_probe` (WebTransport, QUIC)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from .http_clients import HTTPClient

__all__ = ["Probe", "TextHandler"]

TextHandler = Callable[[str, int], None]


def _ignore_text(text: str, at: int) -> None:
    pass


class Probe:
    """One measuring connection. ``await open()``, run ``receive()`` in a task, ``send()`` texts
    for an echo, ``close()``."""

    transport = ""

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        self.port = port
        self.push_to = uuid.uuid4().hex
        self.requests = 0
        self.on_text: TextHandler = _ignore_text
        self.heartbeat_ns = int(heartbeat_s * 1e9)
        self._arrivals: list[int] = []
        self._dues: list[int | None] = []

    @property
    def beats(self) -> int:
        return len(self._arrivals)

    def clients(self) -> list[HTTPClient]:
        """The probe's HTTP clients (none for a WebSocket probe)."""
        return []

    def links(self) -> set[object]:
        """The connections open under this probe: TCP (HTTP/2: shared with other probes), or a
        WebTransport probe's QUIC connection."""
        return {link for client in self.clients() if (link := client.link) is not None}

    def wire_bytes(self) -> int | None:
        """Bytes this probe's connections wrote and read above TLS (``None``: not counted)."""
        clients = self.clients()
        if not clients:
            return None
        by_link = {id(client.link or client): client.wire_bytes for client in clients}
        return sum(by_link.values())

    def socket_bytes(self) -> int | None:
        """Bytes this probe's own sockets carried both ways, when it counts them itself (a QUIC
        probe: UDP payload); ``None``: count them with a TCP relay in front of the server
        (:class:`~transport_demo.bench.relay.CountingRelay`)."""
        return None

    @property
    def version(self) -> str:
        """The HTTP version spoken (a WebSocket probe: ``"websocket"``; WebTransport's:
        ``"HTTP/3"``)."""
        clients = self.clients()
        return clients[0].version if clients else "websocket"

    def beat(self, at: int, due: int | None = None) -> None:
        """A heartbeat arrived at ``at``; it was due at ``due`` (a poll's: sent + hold), or, for
        a stream, on its schedule: every ``heartbeat_s`` from the connection's start."""
        self._arrivals.append(at)
        self._dues.append(due)

    def lags_since(self, mark: int) -> list[float]:
        """Lateness (ms) of the heartbeats after the first ``mark``. A stream's schedule is
        anchored at its most punctual heartbeat (client and server clocks for the connection's
        start differ, and a client busy opening thousands of connections notes it late)."""
        interval = self.heartbeat_ns
        scheduled = [
            at - index * interval
            for index, (at, due) in enumerate(zip(self._arrivals, self._dues, strict=True), 1)
            if due is None
        ]
        anchor = min(scheduled, default=0)
        lags = []
        for index in range(mark, len(self._arrivals)):
            due = self._dues[index]
            if due is None:
                due = anchor + (index + 1) * interval
            lags.append((self._arrivals[index] - due) / 1e6)
        return lags

    async def open(self) -> None:
        raise NotImplementedError

    async def receive(self) -> None:
        raise NotImplementedError

    async def send(self, text: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError
