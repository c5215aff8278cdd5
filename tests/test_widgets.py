"""The widgets driven headless (no browser), and in a real, idle Jupyter kernel."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from transport_demo import RunningServer
from transport_demo.widgets import (
    LongPollWidget,
    SSEWidget,
    TransportDashboard,
    TransportWidget,
    WebSocketWidget,
    WebTransportWidget,
)

WIDGETS = [LongPollWidget, SSEWidget, WebSocketWidget, WebTransportWidget]
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def stop_later() -> Iterator[list[TransportWidget]]:
    made: list[TransportWidget] = []
    yield made
    for widget in made:
        widget.stop()


def make(cls: type[TransportWidget], server: RunningServer, made: list[Any], **kw: Any) -> Any:
    widget = cls(server.url, backoff_initial=0.05, backoff_max=0.5, **kw)
    made.append(widget)
    return widget


def is_live(w: TransportWidget) -> bool:
    return w.connection_id is not None and w.status in ("open", "waiting")


@pytest.mark.parametrize("cls", WIDGETS, ids=lambda c: c.__name__)
def test_start_send_stop_by_code_and_by_clicks(
    server: RunningServer, stop_later: list[TransportWidget], cls: type[TransportWidget]
) -> None:
    widget = make(cls, server, stop_later)
    assert widget.status == "idle"
    widget.start_button.click()
    assert widget.wait_until(is_live, 5)
    assert widget.connection_id in server.hub
    widget.send("by code")
    widget.text.value = "by the text field"  # what Enter does (continuous_update=False)
    assert widget.text.value == ""
    widget.text.value = "by the button"
    widget.send_button.click()
    assert widget.wait_until(lambda w: w.stats["messages"] >= 3, 5)
    texts = [e["message"] for e in widget.events if e["type"] in ("message", "user_message")]
    assert texts == ["by code", "by the text field", "by the button"]
    assert widget.wait_until(lambda w: "by the button" in w.log_html.value, 2)
    assert widget.connection_id in widget.status_html.value
    widget.stop_button.click()
    assert widget.status == "closed"
    assert "closed" in widget.status_html.value


@pytest.mark.parametrize("cls", WIDGETS, ids=lambda c: c.__name__)
def test_message_text_is_escaped(
    server: RunningServer, stop_later: list[TransportWidget], cls: type[TransportWidget]
) -> None:
    widget = make(cls, server, stop_later)
    widget.start()
    assert widget.wait_until(is_live, 5)
    widget.send(XSS)
    assert widget.connection_id is not None
    server.hub.publish(widget.connection_id, XSS + " pushed")
    assert widget.wait_until(lambda w: w.stats["messages"] >= 2, 5)
    assert widget.wait_until(lambda w: "pushed" in w.log_html.value, 2)
    values = [w.value for w in (widget.log_html, widget.status_html, widget.counters_html)]
    assert all(XSS not in value and "<img" not in value for value in values)
    assert "&lt;img src=x onerror=alert(1)&gt;" in widget.log_html.value


def test_the_webtransport_widget_resumes_after_cuts_with_nothing_lost_or_doubled(
    make_server: Any, stop_later: list[TransportWidget]
) -> None:
    """Cut by the client (as a network fault) and by the server (close 1012), with messages
    published while the session is away: each arrives once, in seq order, on one connection."""
    server = make_server(resume_grace=10.0)
    widget = make(WebTransportWidget, server, stop_later)
    widget.start()
    assert widget.wait_until(is_live, 5)
    cid = widget.connection_id
    assert cid is not None and server.hub.state_of(cid) == "live"
    widget.cut()
    server.hub.publish(cid, "after the client's cut")
    assert widget.wait_until(lambda w: w.stats["messages"] == 1 and is_live(w), 5)
    assert widget.wait_until(lambda w: server.hub.state_of(cid) == "live", 5)
    assert server.hub.disconnect(cid)
    server.hub.publish(cid, "after the server's cut")
    # a text is sent on the session that carried the replay (one sent into the cut session
    # would be refused, or lost with it, as on a WebSocket)
    assert widget.wait_until(lambda w: w.stats["messages"] == 2, 10)
    widget.send("and then sent")
    assert widget.wait_until(lambda w: w.stats["messages"] == 3, 10)
    durable = [e for e in widget.events if e["type"] in ("message", "user_message")]
    assert [(e["seq"], e["message"]) for e in durable] == [
        (1, "after the client's cut"),
        (2, "after the server's cut"),
        (3, "and then sent"),
    ]
    assert widget.connection_id == cid
    stats = widget.stats
    assert stats["reconnects"] >= 2 and (stats["duplicates"], stats["gaps"]) == (0, 0)
    assert widget.wait_until(lambda w: "and then sent" in w.log_html.value, 2)


def test_the_browser_webtransport_widget_ships_its_page_code() -> None:
    """Its kernel side (the page side: tests/test_browser_widgets.py, in JupyterLab)."""
    from transport_demo.widgets import BrowserWebTransportWidget
    from transport_demo.widgets.browser import JS

    w = BrowserWebTransportWidget("http://127.0.0.1:8000", reconnect=True)
    assert (w.transport, w.running, w.unavailable, w.reconnect) == ("webtransport", False, "", True)
    w.send("one")
    assert w.outbox == [[1, "one"]]
    page = (JS / "page_webtransport.js").read_text(encoding="utf-8")
    assert BrowserWebTransportWidget._esm.startswith(page)
    assert page.count("\n") <= 60  # short enough to read in class, as the others
    assert "function connect(base, show, options)" in page
    assert "serverCertificateHashes" in page and "function unavailable(base)" in page


def test_log_is_bounded_and_redraws_are_throttled(
    server: RunningServer, stop_later: list[TransportWidget]
) -> None:
    widget = make(WebSocketWidget, server, stop_later, log_size=50)
    widget.start()
    assert widget.wait_until(is_live, 5)
    assert widget.connection_id is not None
    started, before = time.monotonic(), widget.redraws
    for i in range(1000):
        server.hub.publish(widget.connection_id, f"burst {i}")
    assert widget.wait_until(lambda w: w.stats["messages"] == 1000, 15)
    time.sleep(0.3)
    elapsed = time.monotonic() - started
    assert len(widget.events) == 50
    assert [e for e in widget.events if e["type"] == "message"][-1]["message"] == "burst 999"
    assert widget.log_html.value.count("td-entry") == 50
    # At most ~10 redraws a second (interval 0.1 s), plus a couple for start and end.
    assert widget.redraws - before <= elapsed / 0.1 + 3


def test_status_changes_while_the_server_goes_away(
    make_server: Any, stop_later: list[TransportWidget]
) -> None:
    server = make_server()
    widget = make(SSEWidget, server, stop_later)
    widget.start()
    assert widget.wait_until(is_live, 5)
    server.stop()
    assert widget.wait_until(lambda w: w.status == "reconnecting", 5)
    assert widget.wait_until(lambda w: "reconnecting" in w.status_html.value, 2)
    assert any(e["type"] == "reconnecting" and e["client"] for e in widget.events)


def test_errors_show_in_the_widget(make_server: Any, stop_later: list[TransportWidget]) -> None:
    server = make_server(max_message_bytes=5)
    widget = make(LongPollWidget, server, stop_later)
    widget.send("before start")
    assert widget.events[-1]["error"] == "not_started"
    widget.start()
    assert widget.wait_until(is_live, 5)
    widget.send("far too long")
    assert widget.events[-1]["error"] == "message_too_large"
    assert "message_too_large" in widget.log_html.value


def test_dashboard_runs_every_transport(server: RunningServer) -> None:
    dashboard = TransportDashboard(server.url)
    try:
        dashboard.start()
        assert all(w.wait_until(is_live, 5) for w in dashboard.widgets)
        ids = {w.connection_id for w in dashboard.widgets}
        assert len(ids) == len(dashboard.widgets) >= 3  # one connection each
        dashboard.send("to all")
        for widget in dashboard.widgets:
            assert widget.wait_until(lambda w: w.stats["messages"] >= 1, 5)
    finally:
        dashboard.stop()
    assert {w.status for w in dashboard.widgets} == {"closed"}


IDLE_KERNEL_SETUP = """
from transport_demo import start_server
from transport_demo.widgets import LongPollWidget, SSEWidget, WebSocketWidget
server = start_server(port=0, heartbeat_interval=0.2, poll_timeout=0.5)
ws = [cls(server.url) for cls in (LongPollWidget, SSEWidget, WebSocketWidget)]
for w in ws:
    w.start()
"""

IDLE_KERNEL_CHECK = """
import json
print(json.dumps({type(w).__name__: w.stats for w in ws}))
for w in ws:
    w.stop()
server.stop()
"""


def execute(client: Any, code: str, timeout: float = 60) -> str:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


@pytest.mark.notebook
def test_clients_keep_running_while_the_kernel_is_idle() -> None:
    km = KernelManager(kernel_name="python3")  # "python" in its argv becomes sys.executable
    km.start_kernel()
    # One client, ready before the widgets start: wait_for_ready drains IOPub until it is quiet
    # for a moment, which never happens while live widgets send updates.
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        setup_output = execute(client, textwrap.dedent(IDLE_KERNEL_SETUP))
        assert setup_output == ""  # the server and clients print nothing into the cell
        time.sleep(3)  # the kernel executes nothing meanwhile
        stats = json.loads(execute(client, textwrap.dedent(IDLE_KERNEL_CHECK)))
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    assert stats["LongPollWidget"]["timeouts"] >= 3  # 0.5 s holds over 3 s
    assert stats["SSEWidget"]["heartbeats"] >= 8  # 0.2 s heartbeats over 3 s
    assert stats["WebSocketWidget"]["heartbeats"] >= 8
