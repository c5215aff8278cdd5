"""The transport table: every transport declared once, with what the rest of the package asks of it.

A transport's *facts* live here: its wire name
(:class:`~transport_demo.server.protocol.Transport`), how it
delivers (:class:`DeliveryKind`: a poll answered and acknowledged by the next poll, or a stream kept
open), the event type its client's own texts come back as, and how people see it (label, colour).
The delivery core (:mod:`transport_demo.server.connection`, the hubs), the class view and the
clients ask
this table instead of comparing against one transport by name.

Each side registers its own *parts* against these names: the app its routers
(:data:`transport_demo.server.app.ROUTERS`), :data:`transport_demo.clients.CLIENTS` the Python
clients,
:data:`transport_demo.widgets.WIDGETS` the widgets, client.html its sections (``TRANSPORTS`` in
its script), the bench its probes. Adding a transport is a row here plus one module per side
registered there.

A row says which parts it has (:class:`Part`): a transport can land side by side, its server and
client first. :data:`TABLE` is every row; :data:`TRANSPORTS` the rows with every part, which is
what the page, the widgets, the class view and the bench loop over (WebTransport landed this way:
server and client first, then its widget, page section and probe). The tests hold each
registration to exactly the rows that declare its part.

Imports nothing but the protocol vocabulary, so every layer may use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .protocol import EventType, Transport

__all__ = [
    "EVERY_PART",
    "TABLE",
    "TRANSPORTS",
    "Carrier",
    "DeliveryKind",
    "Part",
    "TransportInfo",
    "having",
    "info",
    "is_stream",
]


class DeliveryKind(enum.StrEnum):
    """How a transport delivers durable events."""

    POLL = "poll"
    """Each request is answered with what waits; the next request's ``last_seq`` acknowledges it.
    Between requests the connection is ``waiting``; unseen for the poll expiry, it is removed."""
    STREAM = "stream"
    """One long-lived response or socket carries events as they come; a cut stream's connection
    is ``disconnected`` and can be resumed within the resume grace."""


class Carrier(enum.StrEnum):
    """What a transport's packets travel in: what a network tool between client and server must
    relay (the suite's TCP proxies cannot carry QUIC)."""

    TCP = "tcp"
    QUIC = "quic"
    """QUIC over UDP (HTTP/3)."""


class Part(enum.StrEnum):
    """A side a transport is registered on."""

    ROUTER = "router"  # server/app.py ROUTERS
    CLIENT = "client"  # clients.CLIENTS
    WIDGET = "widget"  # widgets.WIDGETS
    PAGE = "page"  # a section of client.html
    PROBE = "probe"  # the bench's probe (bench/probes.py OUR_PROBES)


EVERY_PART = frozenset(Part)


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """One row of the table."""

    transport: Transport
    delivery: DeliveryKind
    echo: EventType
    """The type of the durable event a client's own text comes back as."""
    label: str
    """How people name it: "long polling", "SSE", "WebSocket"."""
    colour: str
    """Its colour in the class view and the benchmark's charts (CSS hex)."""
    carrier: Carrier = Carrier.TCP
    parts: frozenset[Part] = EVERY_PART
    """The sides registered for it so far."""


TABLE: dict[Transport, TransportInfo] = {
    info.transport: info
    for info in (
        TransportInfo(
            Transport.LONG_POLLING, DeliveryKind.POLL, EventType.MESSAGE, "long polling", "#e0a100"
        ),
        TransportInfo(Transport.SSE, DeliveryKind.STREAM, EventType.MESSAGE, "SSE", "#2f7de1"),
        TransportInfo(
            Transport.WEBSOCKET, DeliveryKind.STREAM, EventType.USER_MESSAGE, "WebSocket", "#27a55a"
        ),
        TransportInfo(
            Transport.WEBTRANSPORT,
            DeliveryKind.STREAM,
            EventType.USER_MESSAGE,
            "WebTransport",
            "#9b51e0",
            carrier=Carrier.QUIC,
        ),
    )
}
"""Every transport, in the order the suite shows them."""

TRANSPORTS: dict[Transport, TransportInfo] = {
    transport: row for transport, row in TABLE.items() if row.parts == EVERY_PART
}
"""The transports with every part registered: what the page, the widgets, the class view and the
bench show."""


def info(transport: Transport | str) -> TransportInfo:
    """The row of ``transport`` (a :class:`Transport` or its wire name)."""
    return TABLE[Transport(transport)]


def having(part: Part) -> list[Transport]:
    """The transports registered on ``part``, in the table's order."""
    return [transport for transport, row in TABLE.items() if part in row.parts]


def is_stream(transport: Transport | str) -> bool:
    """Whether ``transport`` delivers over a kept-open stream (rather than polls)."""
    return info(transport).delivery is DeliveryKind.STREAM
