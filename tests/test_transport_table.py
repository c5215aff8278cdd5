"""The transport table (transport_demo/server/transports.py) and each side's registration against
it: every
transport declared once, and every part the suite loops over covers exactly the table."""

from __future__ import annotations

import re
from pathlib import Path

from transport_demo.bench.probes import OUR_PROBES, OURS
from transport_demo.clients import CLIENTS
from transport_demo.server.app import ROUTERS
from transport_demo.server.connection import Connection
from transport_demo.server.protocol import ConnectionState, EventType, Transport
from transport_demo.server.transports import (
    EVERY_PART,
    TABLE,
    TRANSPORTS,
    Carrier,
    DeliveryKind,
    Part,
    having,
    info,
    is_stream,
)
from transport_demo.widgets import WIDGETS, TransportDashboard


def test_every_registration_covers_exactly_the_table() -> None:
    """Each side registers exactly the rows that declare its part; ``TRANSPORTS`` (what the page,
    the widgets and the bench show) is the rows with every part."""
    assert list(TABLE) == list(Transport)
    assert list(TRANSPORTS) == [t for t, row in TABLE.items() if row.parts == EVERY_PART]
    assert list(ROUTERS) == having(Part.ROUTER)
    assert list(CLIENTS) == having(Part.CLIENT)
    assert set(WIDGETS) == set(having(Part.WIDGET))
    assert list(OUR_PROBES) == having(Part.PROBE)
    assert tuple(f"ours {t.value}" for t in TRANSPORTS) == OURS
    for transport, client in CLIENTS.items():
        assert client.transport == transport
    page = Path("transport_demo/static/client.html").read_text(encoding="utf-8")
    table = page[
        page.index("const TRANSPORTS = [") : page.index("];", page.index("const TRANSPORTS"))
    ]
    on_page = [t.value for t in having(Part.PAGE)]
    assert re.findall(r'name: "([a-z-]+)"', table) == on_page
    panels = re.search(r"const PANELS = \{(.*)\};", page)
    assert panels is not None
    assert re.findall(r'"([a-z-]+)":', panels.group(1)) == on_page


def test_the_table_decides_delivery_and_echo() -> None:
    streams = [Transport.SSE, Transport.WEBSOCKET, Transport.WEBTRANSPORT]
    assert [t for t in TABLE if is_stream(t)] == streams
    assert info("long-polling").delivery is DeliveryKind.POLL
    assert info(Transport.WEBSOCKET).echo is EventType.USER_MESSAGE
    assert info(Transport.WEBTRANSPORT).echo is EventType.USER_MESSAGE
    assert info(Transport.SSE).echo is EventType.MESSAGE
    assert [t for t in TABLE if info(t).carrier is Carrier.QUIC] == [Transport.WEBTRANSPORT]
    for transport in TABLE:
        conn = Connection("x", transport, 0.0, wall=0.0)
        detached = conn.state(attached=False)
        if is_stream(transport):
            assert detached is ConnectionState.DISCONNECTED
        else:
            assert detached is ConnectionState.WAITING
        assert conn.polled is not is_stream(transport)


def test_the_dashboard_shows_one_widget_per_transport() -> None:
    dashboard = TransportDashboard("http://127.0.0.1:9")
    assert [type(w) for w in dashboard.widgets] == [WIDGETS[t] for t in TRANSPORTS]
    assert dashboard.long_polling is dashboard.by_transport[Transport.LONG_POLLING]
    assert dashboard.websocket is dashboard.by_transport[Transport.WEBSOCKET]
