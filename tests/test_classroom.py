"""Classroom mode on loopback: settings, the join page and QR code, the per-address and rate
limits over real sockets, cutting a transport and restarting with nothing lost, the class view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import httpx
import pytest
from jupyter_client.manager import KernelManager
from playwright.sync_api import expect, sync_playwright
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from transport_demo import RateLimited, RunningServer, Settings, start_classroom
from transport_demo.__main__ import parse_args, print_classroom
from transport_demo.clients import CLIENTS as REGISTERED
from transport_demo.clients import BaseClient, LongPollClient, SSEClient, WebSocketClient
from transport_demo.server.lan import lan_address
from transport_demo.server.protocol import ErrorCode, Transport
from transport_demo.server.settings import CLASSROOM_DEFAULTS
from transport_demo.server.transports import TRANSPORTS, Part, having
from transport_demo.widgets import ClassroomView

from .browser import CHROMIUM, launch
from .jupyter import KERNEL_READY, running_jupyterlab, write_notebook
from .test_widgets import execute
from .waiting import until, until_async

CLIENTS = [LongPollClient, SSEClient, WebSocketClient]
FAST_CLIENT: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}
# Tests listen on loopback only: classroom mode with the host (and so the join URL) pinned there.
LOOPBACK_ROOM: dict[str, Any] = {"classroom": True, "host": "127.0.0.1"}


def make_client(cls: type[BaseClient], url: str) -> BaseClient:
    options: dict[str, Any] = dict(FAST_CLIENT)
    if cls is SSEClient:
        options["heartbeat_timeout"] = 3.0
    return cls(url, **options)


# -- settings ----------------------------------------------------------------------------------


def test_classroom_settings_fill_in_the_room_and_never_allow_null() -> None:
    room = Settings(classroom=True, join_host="10.1.2.3")
    assert room.host == "0.0.0.0"
    assert room.allowed_origins == ("http://10.1.2.3:*", "http://localhost:*", "http://127.0.0.1:*")
    assert room.max_connections_per_address == CLASSROOM_DEFAULTS["max_connections_per_address"]
    assert room.max_messages_per_second and room.max_message_bytes == 4096
    assert room.join_url(8000) == "http://10.1.2.3:8000/"
    tuned = Settings(classroom=True, join_host="10.1.2.3", max_connections_per_address=None)
    assert tuned.max_connections_per_address is None  # what is given explicitly wins
    with pytest.raises(ValueError, match="null"):
        Settings(classroom=True, allowed_origins=["null", "http://10.1.2.3:8000"])
    plain = Settings()
    assert plain.max_connections_per_address is None and plain.max_messages_per_second is None


def test_classroom_from_the_environment_and_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRANSPORT_DEMO_CLASSROOM", "1")
    monkeypatch.setenv("TRANSPORT_DEMO_JOIN_HOST", "10.9.8.7")
    assert Settings().allowed_origins[0] == "http://10.9.8.7:*"
    monkeypatch.delenv("TRANSPORT_DEMO_CLASSROOM")
    monkeypatch.delenv("TRANSPORT_DEMO_JOIN_HOST")
    args = parse_args(["--classroom", "--join-host", "10.9.8.7"])
    assert args.classroom is True and args.join_host == "10.9.8.7"
    assert parse_args([]).classroom is None  # absent: the settings' default
    print_classroom(Settings(classroom=True, join_host="10.9.8.7"), 8000)
    out = capsys.readouterr().out
    assert "students open http://10.9.8.7:8000/" in out and "http://10.9.8.7:8000/join" in out
    assert "null" not in out.split("allowed origins:")[1].splitlines()[0]
    assert "█" in out or "▀" in out  # the QR code, in block characters


def test_lan_address_sends_nothing_and_falls_back_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []

    class Recording(socket.socket):
        def send(self, *args: Any, **kwargs: Any) -> int:
            sent.append(args)
            return 0

        def sendto(self, *args: Any, **kwargs: Any) -> int:  # type: ignore[override]
            sent.append(args)
            return 0

    monkeypatch.setattr(socket, "socket", Recording)
    address = lan_address()
    socket.inet_aton(address)  # an IPv4 address
    assert sent == []
    assert lan_address(probe="no-such-host.invalid") == "127.0.0.1"  # no route: loopback


# -- the join page and the QR code --------------------------------------------------------------


def test_start_classroom_gives_the_join_url_qr_and_projector_page() -> None:
    room = start_classroom(port=0, host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{room.server.port}/"
        assert room.join_url == url and room.projector_url == url + "join"
        assert "null" not in room.server.settings.allowed_origins
        assert room.qr_svg is not None and room.qr_svg.startswith("<svg")
        shown = room._repr_html_()
        assert url in shown and "<svg" in shown
        assert room.server._repr_html_() == shown  # start_server(classroom=True) shows the same
        page = httpx.get(room.projector_url, timeout=5)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'href="{url}"' in page.text and "<svg" in page.text
        assert "connections per address: 20" in page.text
        students = httpx.get(url, timeout=5)  # what the join URL opens: the client page
        assert students.status_code == 200 and "<html" in students.text.lower()
    finally:
        room.stop()


def test_the_projector_page_encodes_exactly_the_join_url(make_server: Any) -> None:
    segno = pytest.importorskip("segno")
    server = make_server(**LOOPBACK_ROOM)
    url = f"http://127.0.0.1:{server.port}/"
    page = httpx.get(url + "join", timeout=5).text
    svg = page.split('<div class="qr">', 1)[1].split("</div>", 1)[0]
    expected = segno.make(url, error="m", micro=False)
    assert svg == expected.svg_inline(scale=10, border=2, dark="#000", light="#fff", omitsize=True)
    assert expected.error == "M"  # survives ~15 % of the code smudged or glared on a projector


# -- per-address connections ------------------------------------------------------------------


def error_of(response: httpx.Response) -> str:
    return str(response.json()["error"])


def test_connections_per_address_are_refused_with_a_clear_error(make_server: Any) -> None:
    server = make_server(**LOOPBACK_ROOM, max_connections_per_address=2)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        first = http.post("/poll", json={}).json()["connection_id"]
        assert http.post("/poll", json={}).status_code == 200
        refused = http.post("/poll", json={})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert error_of(refused) == ErrorCode.TOO_MANY_CONNECTIONS_FROM_ADDRESS
        assert "127.0.0.1" in refused.json()["detail"]
        with http.stream("GET", "/sse") as sse:
            assert sse.status_code == 429
            assert json.loads(sse.read())["error"] == "too_many_connections_from_address"
        # a connection the address already holds still works
        assert http.post("/poll", json={"connection_id": first, "text": "hi"}).status_code == 200
    with pytest.raises(InvalidStatus) as handshake:
        connect(f"{server.ws_url}/ws", open_timeout=5)
    assert handshake.value.response.status_code == 429
    assert json.loads(handshake.value.response.body or b"{}")["error"] == (
        "too_many_connections_from_address"
    )
    stats = server.hub.stats()
    assert stats["total"] == 2 and stats["refused_per_address"] == 3


@pytest.mark.anyio
@pytest.mark.parametrize("cls", list(REGISTERED.values()), ids=lambda c: c.transport)
async def test_a_client_over_the_address_limit_reports_it(make_server: Any, cls: Any) -> None:
    server = make_server(**LOOPBACK_ROOM, max_connections_per_address=1)
    hub = server.hub
    hub.call_from_thread(hub.aconnect_long_poll("127.0.0.1"))  # the address's one place is taken
    async with make_client(cls, server.url) as client:
        await until_async(lambda: client.state == "error", what="the client gives up")
        errors = [e for e in client.take_unread() if e["type"] == "error"]
        assert errors[-1]["error"] == "too_many_connections_from_address"


# -- texts per second ------------------------------------------------------------------------


def test_texts_per_second_are_refused_past_the_burst(make_server: Any) -> None:
    server = make_server(**LOOPBACK_ROOM, max_messages_per_second=0.5, message_burst=2)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        cid = http.post("/poll", json={}).json()["connection_id"]
        answers = [
            http.post("/poll", json={"connection_id": cid, "text": str(i)}) for i in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert error_of(answers[2]) == ErrorCode.RATE_LIMITED
        assert "0.5 texts a second" in answers[2].json()["detail"]
        with http.stream("GET", "/sse") as stream:
            lines = stream.iter_lines()
            sid = next(json.loads(x[5:]) for x in lines if x.startswith("data:"))["connection_id"]
            sent = [
                http.post("/sse/message", json={"connection_id": sid, "text": str(i)})
                for i in range(3)
            ]
            assert [s.status_code for s in sent] == [200, 200, 429]
            assert error_of(sent[2]) == "rate_limited"
    with connect(f"{server.ws_url}/ws", open_timeout=5) as ws:
        assert json.loads(ws.recv(5))["type"] == "connected"
        for i in range(3):
            ws.send(json.dumps({"message": str(i)}))
        got = [json.loads(ws.recv(5)) for _ in range(3)]
        # (an error is not durable: it may overtake the echoes queued before it)
        assert sorted(g["type"] for g in got) == ["error", "user_message", "user_message"]
        assert [g["error"] for g in got if g["type"] == "error"] == ["rate_limited"]
        ws.send(json.dumps({"message": "still open"}))  # the socket stays open
        assert json.loads(ws.recv(5))["error"] == "rate_limited"  # (and still too fast)
    assert server.hub.stats()["rate_limited"] == 4


# -- cut and restart: reconnects, backoff, resume with nothing lost ------------------------------


async def everything_arrived(clients: list[BaseClient], count: int) -> None:
    await until_async(
        lambda: all(c.stats.messages >= count for c in clients), 10, what="every message arrived"
    )
    for client in clients:
        assert client.stats.gaps == 0 and client.stats.messages == count, client.transport


@pytest.mark.anyio
async def test_cut_each_transport_then_restart_and_nothing_is_lost(make_server: Any) -> None:
    server: RunningServer = make_server(**LOOPBACK_ROOM, heartbeat_interval=0.5)
    clients = [make_client(cls, server.url) for cls in CLIENTS]
    for client in clients:
        await client.start()
    try:
        ids = [await client.wait_connected() for client in clients]
        sent = 0
        for transport in Transport:
            cut = await asyncio.to_thread(server.hub.disconnect_all, transport)
            for i in range(5):  # pushed while the cut clients come back
                server.hub.broadcast(f"{transport} {i}")
            sent += 5
            assert cut <= 1
        await everything_arrived(clients, sent)
        sse, ws = clients[1], clients[2]
        assert sse.stats.reconnects >= 1 and ws.stats.reconnects >= 1
        notes = ws.take_unread()
        assert any(e["type"] == "reconnecting" and "1012" in e["detail"] for e in notes)
        await asyncio.to_thread(server.restart)
        for i in range(5):
            server.hub.broadcast(f"after restart {i}")
        await everything_arrived(clients, sent + 5)
        assert [c.connection_id for c in clients] == ids  # resumed, not new connections
        assert server.hub.stats()["streams_resumed"] >= 4
    finally:
        for client in clients:
            await client.close()


# -- the class view --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_class_view_follows_the_room_and_drives_it(make_server: Any) -> None:
    server = make_server(**LOOPBACK_ROOM)
    view = ClassroomView(server, interval=0.1)
    # One client of each transport the class view shows (the table's TRANSPORTS).
    clients = [make_client(REGISTERED[transport], server.url) for transport in TRANSPORTS]
    try:
        for client in clients:
            await client.start()
        await until_async(lambda: (view.latest or view.sample()).total == 4, what="4 in the view")
        assert view.latest is not None and view.latest.connections == {
            "long-polling": 1,
            "sse": 1,
            "websocket": 1,
            "webtransport": 1,
        }
        assert view.plot_html.value.count("<polyline") == 4
        assert "WebTransport: 1" in view.plot_html.value
        assert "127.0.0.1" in view.join_html.value and "<svg" in view.join_html.value
        view.broadcast_text.value = "hello room"  # Enter in the box broadcasts
        assert view.broadcast_text.value == "" and "broadcast to 4" in view.status_html.value
        await until_async(lambda: all(c.stats.messages == 1 for c in clients), what="broadcast")
        view.cut_buttons[Transport.WEBSOCKET].click()
        assert "cut 1 of WebSocket" in view.status_html.value
        await until_async(lambda: clients[2].stats.reconnects >= 1, what="the socket came back")
        await asyncio.to_thread(view.restart_button.click)
        assert "restarted" in view.status_html.value
        await until_async(
            lambda: view.latest is not None and view.latest.reconnects >= 3,
            what="the view counts the reconnects",
        )
        assert "reconnects" in view.numbers_html.value
        redraws = view.redraws
        await until_async(lambda: view.redraws > redraws + 2, what="the view keeps sampling")
    finally:
        view.stop()
        for client in clients:
            await client.close()


def test_class_view_shows_callback_errors() -> None:
    server = start_classroom(port=0, host="127.0.0.1").server
    view = ClassroomView(server, interval=0.1, show_qr=False)
    try:
        view.broadcast_text.value = "x" * 5000  # over the classroom's 4096 bytes
        assert "MessageTooLarge" in view.status_html.value
        hub = server.hub
        hub.call_from_thread(hub.aconnect_long_poll("10.0.0.7"))
        cid = json.loads(hub.call_from_thread(hub.aconnect_long_poll("10.0.0.8")))["connection_id"]
        for _ in range(21):  # a burst of 20, then refused
            with contextlib.suppress(RateLimited):
                hub.call_from_thread(hub.areceive(cid, "hi", Transport.LONG_POLLING))
        until(lambda: view.latest is not None and view.latest.rate_limited == 1, what="counted")
        assert view.latest is not None and view.latest.addresses == 2
        assert "rate limited <b>1</b>" in view.numbers_html.value
        until(lambda: view.redraws >= 3, what="sampling")
    finally:
        view.stop()
        server.stop()


# -- the command line ------------------------------------------------------------------------


def test_command_line_classroom_prints_the_join_url_and_serves_join() -> None:
    command = [sys.executable, "-m", "transport_demo", "--classroom", "--host", "127.0.0.1"]
    with subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        serve_join_and_stop(process)


def serve_join_and_stop(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"students open (http://127\.0\.0\.1:\d+/)", first)
        assert match, first
        url = match.group(1)
        page = httpx.get(url + "join", timeout=5)
        assert page.status_code == 200 and url in page.text and "<svg" in page.text
    finally:
        process.terminate()
        process.wait(10)


# -- the class view with a room of 200 clients, while the kernel is idle ------------------------

ROOM_SETUP = """
from transport_demo import start_server
from transport_demo.clients import LongPollClient, SSEClient, WebSocketClient
from transport_demo.widgets import ClassroomView, runner
server = start_server(port=0, classroom=True, host="127.0.0.1", max_connections_per_address=None,
                      max_sockets_per_address=None, heartbeat_interval=2, poll_timeout=3)
view = ClassroomView(server, interval=0.25, show_qr=False)
kinds = [LongPollClient] * 60 + [SSEClient] * 70 + [WebSocketClient] * 70
clients = [cls(server.url, backoff_initial=0.2, backoff_max=2) for cls in kinds]
async def start_all():
    for client in clients:
        await client.start()
runner.run(start_all())
before_idle = len(view.samples)
"""

ROOM_CUT = """
import json
print(json.dumps({"sampled_while_idle": len(view.samples) - before_idle,
                  "connections": view.latest.connections}))
view.broadcast_text.value = "hello room"
view.cut_buttons["websocket"].click()
view.cut_buttons["sse"].click()
before_idle = len(view.samples)
"""

ROOM_CHECK = """
print(json.dumps({"sampled_while_idle": len(view.samples) - before_idle,
                  "connections": view.latest.connections, "reconnects": view.latest.reconnects,
                  "messages": sorted({c.stats.messages for c in clients}),
                  "gaps": sum(c.stats.gaps for c in clients),
                  "ids_kept": sum(c.connection_id is not None for c in clients),
                  "plot": view.plot_html.value.count("<polyline")}))
async def close_all():
    await asyncio.gather(*(c.close() for c in clients))
runner.run(close_all(), timeout=30)
view.stop()
server.stop()
"""


@pytest.mark.slow
@pytest.mark.notebook
def test_class_view_follows_200_clients_while_the_kernel_is_idle() -> None:
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        assert execute(client, textwrap.dedent(ROOM_SETUP)) == ""  # nothing printed
        time.sleep(6)  # the kernel executes nothing: the clients connect, the view samples
        first = json.loads(execute(client, textwrap.dedent(ROOM_CUT)))
        time.sleep(6)  # idle again: 140 streams come back with backoff and resume
        last = json.loads(execute(client, "import asyncio\n" + textwrap.dedent(ROOM_CHECK)))
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    room = {"long-polling": 60, "sse": 70, "websocket": 70, "webtransport": 0}  # all four counted
    assert first["sampled_while_idle"] >= 10  # 0.25 s over 6 s is 24: leave room for a busy CPU
    assert first["connections"] == room
    assert last["sampled_while_idle"] >= 10
    assert last["connections"] == room  # every cut client resumed its own connection
    assert last["reconnects"] >= 140
    assert last["messages"] == [1] and last["gaps"] == 0  # the broadcast reached all, once
    assert last["ids_kept"] == 200 and last["plot"] == len(
        room
    )  # a line per transport of the table


# -- the students' page: cut, restart, and nothing lost, in a real browser -----------------------


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)",
)
def test_the_page_at_the_join_url_resumes_after_cuts_and_a_restart(make_server: Any) -> None:
    # resume_grace well above the SSE retry (1 s): a cut stream's connection must outlive the
    # browser's wait before it reconnects, or the reaper may take it first (the fixture's 1 s
    # grace raced the 1 s retry, and lost once under load: a new connection, the text gone).
    server = make_server(
        **LOOPBACK_ROOM, heartbeat_interval=0.5, poll_timeout=1.0, resume_grace=10.0
    )
    view = ClassroomView(server, interval=0.2, show_qr=False)
    transports = [t.value for t in having(Part.PAGE)]  # the sections client.html has
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.goto(server.settings.join_url(server.port))
            ids = {t: start_page_client(page, t) for t in transports}
            for transport in map(Transport, transports):
                view.cut(transport)
                view.broadcast(f"after cutting {transport.value}")
            arrived_once(page, ids, [f"after cutting {t}" for t in transports], reconnects=1)
            view.restart()
            view.broadcast("after the restart")
            arrived_once(page, ids, ["after the restart"], reconnects=2)
            assert view.latest is not None and view.latest.total == len(transports)
        finally:
            view.stop()
            browser.close()


def arrived_once(page: Any, ids: dict[str, str], texts: list[str], reconnects: int) -> None:
    """Every text arrived exactly once in every section, on the same connection, no gap; the
    streams (SSE, WebSocket) came back at least ``reconnects`` times."""
    for transport, cid in ids.items():
        part = page.locator(f'[data-transport="{transport}"]')
        log = part.locator('[data-role="log"]')
        for text in texts:
            durable = log.locator('[data-type="message"]').filter(has_text=text)
            try:
                expect(durable).to_have_count(1, timeout=30_000)
            except AssertionError as exc:  # say what the section did meanwhile
                status = part.locator('[data-role="status"]').inner_text()
                raise AssertionError(
                    f"{transport}: {text!r} not shown once; status {status!r}; log:\n"
                    + log.inner_text()[-3000:]
                ) from exc
        assert part.locator('[data-role="connection-id"]').inner_text() == cid
        assert part.locator('[data-role="gaps"]').inner_text() == "0"
        assert part.locator('[data-role="duplicates"]').inner_text() == "0"
        if transport != "long-polling":  # a long poll's cut is an answer, not a reconnect
            assert int(part.locator('[data-role="reconnects"]').inner_text()) >= reconnects


def start_page_client(page: Any, transport: str) -> str:
    part = page.locator(f'[data-transport="{transport}"]')
    part.locator('[data-action="start"]').click()
    cid = part.locator('[data-role="connection-id"]')
    expect(cid).to_have_text(re.compile(r"^[0-9a-f-]{36}$"), timeout=10_000)
    return str(cid.inner_text())


# -- the QR code and the class view rendered in a real JupyterLab, driven by clicks ---------------

CLASSROOM_NOTEBOOK = [
    "from transport_demo import start_classroom\n"
    "room = start_classroom(port=0, host='127.0.0.1', heartbeat_interval=0.5)\n"
    "room  # the join URL and its QR code",
    "view = room.view(interval=0.2)\nview",
    "from transport_demo.widgets import SSEWidget\n"
    "w = SSEWidget(room.server.url, backoff_initial=0.05, backoff_max=0.5)\nw.start()\nw",
]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)",
)
def test_class_view_in_jupyterlab_shows_the_room_and_its_buttons_work(tmp_path: Any) -> None:
    write_notebook(tmp_path / "room.ipynb", CLASSROOM_NOTEBOOK)
    token = "transport-demo-classroom-test"
    with running_jupyterlab(tmp_path, token) as url, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(f"{url}/lab/tree/room.ipynb?token={token}")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=90_000)
            page.wait_for_function(KERNEL_READY, timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            outputs = page.locator(".jp-OutputArea-output")
            # The room's repr: the join URL as a link and the QR code as SVG.
            join = outputs.locator('a[href^="http://127.0.0.1:"]').filter(has_text="127.0.0.1")
            expect(join.first).to_be_visible(timeout=90_000)
            expect(outputs.locator("svg.segno").first).to_be_visible()
            # The class view follows the SSE widget's connection while the kernel is idle.
            numbers = outputs.locator(".td-numbers")
            expect(numbers).to_contain_text("connections 1", timeout=30_000)
            expect(outputs.locator("polyline.td-sse")).to_have_count(1)
            # A click in the browser cuts SSE in the kernel; the widget reconnects and resumes.
            page.get_by_role("button", name="Cut SSE").click()
            expect(outputs.locator(".td-status")).to_contain_text("cut 1 of SSE", timeout=10_000)
            expect(outputs.locator('.td-entry[data-type="reconnected"]').first).to_be_visible(
                timeout=15_000
            )
            expect(numbers).to_contain_text("reconnects 1", timeout=10_000)
        finally:
            browser.close()
