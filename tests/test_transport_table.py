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
from transport_demo.server.transports import TRANSPORTS, DeliveryKind, info, is_stream
from transport_demo.widgets import WIDGETS, TransportDashboard


def test_every_registration_covers_exactly_the_table() -> None:
    assert list(TRANSPORTS) == list(Transport)
    assert set(ROUTERS) == set(TRANSPORTS)
    assert set(CLIENTS) == set(TRANSPORTS)
    assert set(WIDGETS) == set(TRANSPORTS)
    assert list(OUR_PROBES) == list(TRANSPORTS)
    assert tuple(f"ours {t.value}" for t in TRANSPORTS) == OURS
    for transport, client in CLIENTS.items():
        assert client.transport == transport
    page = Path("transport_demo/static/client.html").read_text(encoding="utf-8")
    table = page[
        page.index("const TRANSPORTS = [") : page.index("];", page.index("const TRANSPORTS"))
    ]
    assert re.findall(r'name: "([a-z-]+)"', table) == [t.value for t in TRANSPORTS]
    panels = re.search(r"const PANELS = \{(.*)\};", page)
    assert panels is not None
    assert re.findall(r'"([a-z-]+)":', panels.group(1)) == [t.value for t in TRANSPORTS]


def test_the_table_decides_delivery_and_echo() -> None:
    assert [t for t in TRANSPORTS if is_stream(t)] == [Transport.SSE, Transport.WEBSOCKET]
    assert info("long-polling").delivery is DeliveryKind.POLL
    assert info(Transport.WEBSOCKET).echo is EventType.USER_MESSAGE
    assert info(Transport.SSE).echo is EventType.MESSAGE
    for transport in TRANSPORTS:
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
