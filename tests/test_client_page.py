"""client.html in a real headless Chromium: the original demo's five manual checks per transport,
the page opened from a file, the XSS check, and reconnection across a server restart."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from transport_demo import RunningServer, start_server
from transport_demo.server.transports import TRANSPORTS as TRANSPORT_TABLE
from transport_demo.server.transports import Carrier

from .browser import CHROMIUM, launch
from .waiting import until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
        reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
# The page's sections over TCP: the proxies of test_proxy_jupyter.py and test_jupyterhub.py (which
# loop over this list) carry no UDP. WebTransport's section has its own tests
# (test_webtransport_browser.py), its close codes and resume being its own.
TRANSPORTS = [t.value for t, row in TRANSPORT_TABLE.items() if row.carrier is Carrier.TCP]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ECHO = {"long-polling": "message", "sse": "message", "websocket": "user_message"}
# What a live connection shows when nothing else happens.
IDLE_EVENT = {"long-polling": "timeout", "sse": "heartbeat", "websocket": "heartbeat"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page_server(make_server: Any) -> RunningServer:
    return make_server(heartbeat_interval=0.5, poll_timeout=1.0, resume_grace=1.0)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    contexts = []

    def make(url: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        return page

    yield make
    for context in contexts:
        context.close()


def section(page: Page, transport: str) -> Locator:
    return page.locator(f'[data-transport="{transport}"]')


def start(page: Page, transport: str) -> str:
    part = section(page, transport)
    part.locator('[data-action="start"]').click()
    cid = part.locator('[data-role="connection-id"]')
    expect(cid).to_have_text(UUID, timeout=10_000)
    return cid.inner_text()


def send(page: Page, transport: str, text: str) -> None:
    field = section(page, transport).locator('[data-role="input"]')
    field.fill(text)
    field.press("Enter")


def entries(page: Page, transport: str, kind: str) -> Locator:
    return section(page, transport).locator(f'[data-role="log"] [data-type="{kind}"]')


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_basic_connection_and_sending(
    page_server: RunningServer, new_page: Any, transport: str
) -> None:
    page = new_page(page_server.url)
    cid = start(page, transport)
    assert cid in page_server.hub
    expect(section(page, transport).locator('[data-role="status"]')).to_have_text(
        re.compile("open|waiting"), timeout=5000
    )
    expect(entries(page, transport, IDLE_EVENT[transport]).first).to_be_visible(timeout=10_000)
    started = time.monotonic()
    send(page, transport, "hello from the browser")
    echo = entries(page, transport, ECHO[transport]).filter(has_text="hello from the browser")
    expect(echo).to_have_count(1, timeout=5000)
    assert time.monotonic() - started < 5
    assert echo.get_attribute("data-seq") == "1"
    # The mechanics line says what the transport is doing.
    expect(section(page, transport).locator('[data-role="mechanics"]')).not_to_have_text("idle")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_multiple_clients_are_isolated(
    page_server: RunningServer, new_page: Any, transport: str
) -> None:
    first, second = new_page(page_server.url), new_page(page_server.url)
    a, b = start(first, transport), start(second, transport)
    assert a != b
    send(first, transport, "only for the first page")
    expect(entries(first, transport, ECHO[transport])).to_have_count(1, timeout=5000)
    page_server.hub.publish(b, "only for the second page")
    expect(entries(second, transport, "message")).to_have_count(1, timeout=5000)
    time.sleep(0.5)  # an absence: give a wrongly routed event time to show up
    assert "only for the first page" not in section(second, transport).inner_text()
    assert "only for the second page" not in section(first, transport).inner_text()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_closing_the_page_drops_the_connection_after_grace(
    page_server: RunningServer, browser: Browser, transport: str
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_server.url)
    first = start(page, transport)
    context.close()
    deadline = time.monotonic() + 10  # grace 1 s; long polling: 2 x 1 s after its last poll
    while first in page_server.hub:
        assert time.monotonic() < deadline, "the connection was not dropped"
        time.sleep(0.1)
    stats = httpx.get(f"{page_server.url}/stats").json()
    assert first[:8] not in {c["id"] for c in stats["connection_list"]}
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_server.url)
    assert start(page, transport) != first
    context.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_queueing_and_ordering(page_server: RunningServer, new_page: Any, transport: str) -> None:
    page = new_page(page_server.url)
    start(page, transport)
    for i in range(20):
        send(page, transport, f"quick {i}")
    echoes = entries(page, transport, ECHO[transport])
    expect(echoes).to_have_count(20, timeout=10_000)
    texts = [re.search(r"quick \d+", t).group(0) for t in echoes.all_inner_texts()]  # type: ignore[union-attr]
    assert texts == [f"quick {i}" for i in range(20)]
    seqs = [int(e.get_attribute("data-seq") or 0) for e in echoes.all()]
    assert seqs == list(range(1, 21))
    assert section(page, transport).locator('[data-role="duplicates"]').inner_text() == "0"
    assert section(page, transport).locator('[data-role="gaps"]').inner_text() == "0"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_message_text_is_never_html(
    page_server: RunningServer, new_page: Any, transport: str
) -> None:
    page = new_page(page_server.url)
    cid = start(page, transport)
    payload = "<img src=x onerror=window.__xss=1><b>bold</b>"
    send(page, transport, payload)
    page_server.hub.publish(cid, payload)
    expect(section(page, transport).locator('[data-role="log"]')).to_contain_text(
        payload, timeout=5000
    )
    assert page.evaluate("window.__xss") is None
    assert (
        section(page, transport).locator('[data-role="log"] img, [data-role="log"] b').count() == 0
    )


def test_page_opened_from_a_file_works(page_server: RunningServer, new_page: Any) -> None:
    page = new_page((ROOT / "client.html").as_uri())
    url_field = page.locator('[data-role="server-url"]')
    expect(url_field).to_have_value("http://localhost:8000")
    url_field.fill(page_server.url)
    url_field.press("Enter")
    for transport in TRANSPORTS:  # Origin "null" is allowed by default
        cid = start(page, transport)
        send(page, transport, f"from a file via {transport}")
        expect(entries(page, transport, ECHO[transport])).to_have_count(1, timeout=5000)
        assert cid in page_server.hub


def test_served_page_is_the_file(page_server: RunningServer) -> None:
    assert httpx.get(page_server.url).text == (ROOT / "client.html").read_text(encoding="utf-8")


def test_errors_show_in_the_section(make_server: Any, new_page: Any) -> None:
    server = make_server(max_message_bytes=10)
    page = new_page(server.url)
    for transport in ("long-polling", "sse"):
        start(page, transport)
        send(page, transport, "far more than ten bytes")
        error = entries(page, transport, "error")
        expect(error).to_contain_text("message_too_large", timeout=5000)
    start(page, "websocket")
    send(page, "websocket", "x" * 11)  # within the frame limit: an error event
    expect(entries(page, "websocket", "error")).to_contain_text("message_too_large")
    send(page, "websocket", "x" * 5000)  # over the frame limit: the server closes with 1009
    expect(entries(page, "websocket", "error")).to_contain_text(["close_1009"], timeout=5000)
    # Like the Python client, the page gives up: resending would be refused again.
    expect(section(page, "websocket").locator('[data-role="status"]')).to_have_text(
        re.compile("closed \\(1009\\)")
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnects_after_a_server_restart(new_page: Any, transport: str) -> None:
    server = start_server(port=0, heartbeat_interval=0.5, poll_timeout=1.0, resume_grace=1.0)
    port = server.port
    try:
        page = new_page(server.url)
        first = start(page, transport)
        server.stop()
        status = section(page, transport).locator('[data-role="status"]')
        expect(status).to_have_text(re.compile("reconnecting|error"), timeout=10_000)
        server = start_server(port=port, heartbeat_interval=0.5, poll_timeout=1.0, resume_grace=1.0)
        cid = section(page, transport).locator('[data-role="connection-id"]')
        expect(cid).not_to_have_text(first, timeout=20_000)
        expect(cid).to_have_text(UUID)
        # The page says it is a new connection: nothing is silently lost. Its notes have the
        # Python clients' names.
        expect(entries(page, transport, "new_connection").first).to_be_visible()
        expect(entries(page, transport, "reconnecting").first).to_be_visible()
        expect(entries(page, transport, "reconnected").first).to_be_visible()
        assert int(section(page, transport).locator('[data-role="reconnects"]').inner_text()) >= 1
        send(page, transport, "after the restart")
        expect(
            entries(page, transport, ECHO[transport]).filter(has_text="after the restart")
        ).to_have_count(1, timeout=5000)
    finally:
        server.stop()


def test_stop_closes_cleanly(page_server: RunningServer, new_page: Any) -> None:
    page = new_page(page_server.url)
    ids = {t: start(page, t) for t in TRANSPORTS}
    for transport in TRANSPORTS:
        section(page, transport).locator('[data-action="stop"]').click()
        expect(section(page, transport).locator('[data-role="status"]')).to_have_text(
            re.compile("closed")
        )
    for transport in ("sse", "websocket"):
        until(lambda t=transport: page_server.hub.state_of(ids[t]) == "disconnected")
    section(page, "websocket").locator('[data-action="clear"]').click()
    expect(section(page, "websocket").locator('[data-role="log"] .entry')).to_have_count(0)


# -- behind a path prefix, as behind jupyter-server-proxy (the real proxy: test_proxy_jupyter.py) --

PREFIX = "/user/ada/proxy/8000/"


class StripPrefix:
    """An ASGI wrapper that serves the app under ``PREFIX`` and strips it, as
    jupyter-server-proxy's ``/proxy/<port>/`` does; anything outside the prefix is a 404."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if not (path + "/").startswith(PREFIX):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send({"type": "http.response.start", "status": 404, "headers": []})
                    await send({"type": "http.response.body", "body": b"outside the prefix"})
                return
            inner = "/" + path[len(PREFIX) :]
            scope = {**scope, "path": inner, "raw_path": inner.encode()}
        await self.app(scope, receive, send)


@pytest.fixture
def prefixed_server() -> Iterator[tuple[str, Any]]:
    """The app under PREFIX on a free port; yields (the prefixed page URL, its hub)."""
    import threading

    from transport_demo import Hub, Settings, create_app
    from transport_demo.server.launcher import DemoServer, bind_socket, uvicorn_config

    settings = Settings(port=0, heartbeat_interval=0.5, poll_timeout=1.0, resume_grace=1.0)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    hub = Hub(settings)
    app = StripPrefix(create_app(settings, hub=hub))
    config = uvicorn_config(app, settings, port=port, log_config=None, access_log=False)
    server = DemoServer(config, hub)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}", hub
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def test_page_under_a_path_prefix(prefixed_server: tuple[str, Any], new_page: Any) -> None:
    url, hub = prefixed_server
    page = new_page(url)
    expect(page.locator('[data-role="server-url"]')).to_have_value(url.rstrip("/"))
    assert page.locator('[data-role="stats-link"]').get_attribute("href") == url + "stats"
    for transport in TRANSPORTS:  # every request, the stream and the socket under the prefix
        cid = start(page, transport)
        assert cid in hub
        expect(entries(page, transport, IDLE_EVENT[transport]).first).to_be_visible(timeout=10_000)
        send(page, transport, f"under a prefix via {transport}")
        expect(entries(page, transport, ECHO[transport])).to_have_count(1, timeout=5000)
    # The same page at the prefix without its trailing slash treats it as the directory.
    bare = new_page(url.rstrip("/"))
    assert bare.evaluate("window.transportDemo.endpoint('poll')") == url + "poll"
    start(bare, "websocket")


def test_socket_scheme_follows_the_page(page_server: RunningServer, new_page: Any) -> None:
    page = new_page(page_server.url)
    assert page.evaluate("window.transportDemo.wsEndpoint('ws')") == (page_server.ws_url + "/ws")
    field = page.locator('[data-role="server-url"]')
    field.fill("https://hub.example/user/ada/proxy/8000")
    field.press("Enter")
    assert page.evaluate("window.transportDemo.wsEndpoint('ws')") == (
        "wss://hub.example/user/ada/proxy/8000/ws"
    )
    assert page.evaluate("window.transportDemo.endpoint('sse')") == (
        "https://hub.example/user/ada/proxy/8000/sse"
    )


def test_page_backoff_is_the_python_clients(page_server: RunningServer, new_page: Any) -> None:
    """One backoff for all three transports, the same as clients/base.py's Backoff."""
    page = new_page(page_server.url)
    delays = page.evaluate(
        "() => { const b = new window.transportDemo.Backoff();"
        " const d = []; for (let i = 0; i < 8; i++) d.push(b.next());"
        " b.reset(); d.push(b.next()); return d; }"
    )
    steps = [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 500]
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 <= delay <= step
    sources = page.content()
    assert sources.count("new Backoff(") == 1  # the Panel's: every transport retries through it
    assert sources.count("Math.random()") == 1
