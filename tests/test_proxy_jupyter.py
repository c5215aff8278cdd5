"""Through a real JupyterLab with jupyter-server-proxy, as on Binder or a remote JupyterLab:
client.html at ``/proxy/<port>/`` with all three transports live (SSE event by event, not
buffered), the Origin rule with the proxy in between, ``server.browser_url`` in a real kernel, a
widget showing events, and the latency of an SSE push through the proxy against direct."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from transport_demo import RunningServer

from .browser import CHROMIUM, launch
from .figures import record
from .jupyter import (
    WIDGET_NOTEBOOK,
    open_notebook_link,
    run_notebook_in_lab,
    running_jupyterlab,
    wait_for_entries,
    write_notebook,
)
from .test_client_page import ECHO, IDLE_EVENT, TRANSPORTS, entries, section, send, start

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)",
    ),
]

TOKEN = "transport-demo-proxy-test"


class Lab:
    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root

    def proxied(self, port: int) -> str:
        return f"{self.url}/proxy/{port}/"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    write_notebook(root / "widget.ipynb", WIDGET_NOTEBOOK)
    with running_jupyterlab(root, TOKEN) as url:
        yield Lab(url, root)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def proxied_server(make_server: Any) -> RunningServer:
    server: RunningServer
    # No local origin in the list: a page gets in only as the same origin as the request's Host,
    # which jupyter-server-proxy forwards as the browser sent it.
    server = make_server(
        heartbeat_interval=0.5,
        poll_timeout=1.0,
        resume_grace=5.0,
        allowed_origins=["http://classroom.invalid:8000"],
    )
    return server


def test_client_page_through_the_proxy(
    lab: Lab, browser: Browser, proxied_server: RunningServer
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{lab.url}/lab?token={TOKEN}")  # logs in: a cookie for the proxied requests too
    page.goto(lab.proxied(proxied_server.port))
    expect(page.locator('[data-role="server-url"]')).to_have_value(
        lab.proxied(proxied_server.port).rstrip("/")
    )
    for transport in TRANSPORTS:
        cid = start(page, transport)
        assert cid in proxied_server.hub
        # Live: idle events arrive one by one while the connection stays up (a buffering proxy
        # would hold an SSE stream's heartbeats back until the stream ends).
        idle = entries(page, transport, IDLE_EVENT[transport])
        expect(idle.first).to_be_visible(timeout=10_000)
        if transport != "long-polling":
            wait_for_entries(page, transport, "heartbeat", 3)
        send(page, transport, f"through the proxy via {transport}")
        echo = entries(page, transport, ECHO[transport]).filter(has_text="through the proxy")
        expect(echo).to_have_count(1, timeout=5000)
        proxied_server.hub.publish(cid, "pushed from Python")
        expect(
            entries(page, transport, "message").filter(has_text="pushed from Python")
        ).to_have_count(1, timeout=5000)
        assert section(page, transport).locator('[data-role="reconnects"]').inner_text() == "0"
        assert section(page, transport).locator('[data-role="gaps"]').inner_text() == "0"
    # The WebSocket went through the proxy with the page's scheme (ws: for http:).
    assert page.evaluate("window.transportDemo.wsEndpoint('ws')") == (
        lab.proxied(proxied_server.port).replace("http:", "ws:") + "ws"
    )
    context.close()


def test_origin_rule_through_the_proxy(lab: Lab, proxied_server: RunningServer) -> None:
    ws_url = lab.proxied(proxied_server.port).replace("http:", "ws:") + "ws"
    # Allowed: the proxied page's own origin (the Jupyter server's), which the Host names.
    with connect(ws_url, origin=Origin(lab.url), additional_headers=lab.auth) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connected"
    # Refused: another site's page through the proxy. With the token in a header the Jupyter
    # server lets any origin through; jupyter-server-proxy accepts the browser's socket, then
    # our server refuses the forwarded Origin (403) and the proxy closes the socket: no event.
    foreign = connect(ws_url, origin=Origin("http://evil.example"), additional_headers=lab.auth)
    with foreign, pytest.raises(ConnectionClosed):
        foreign.recv(timeout=5)
    assert any('"WebSocket /ws" 403' in line for line in proxied_server.log_lines())
    # ... and straight to the server, whose own check names the error.
    with pytest.raises(InvalidStatus) as direct:
        connect(f"{proxied_server.ws_url}/ws", origin=Origin(lab.url))
    assert direct.value.response.status_code == 403
    assert b"origin_not_allowed" in (direct.value.response.body or b"")
    # HTTP: a foreign page's preflight through the proxy gets no CORS grant.
    preflight = httpx.options(
        lab.proxied(proxied_server.port) + "poll",
        headers={
            **lab.auth,
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers


def sse_push_latencies(
    url: str, server: RunningServer, headers: dict[str, str], n: int
) -> list[float]:
    """Seconds from ``hub.publish`` to the event's ``data:`` line read by a client, ``n`` times."""
    latencies = []
    timeout = httpx.Timeout(10, read=10)
    stream_headers = {**headers, "Accept": "text/event-stream"}  # exactly: the proxy streams it
    with (
        httpx.Client(timeout=timeout) as http,
        http.stream("GET", url, headers=stream_headers) as r,
    ):
        assert r.status_code == 200, r.status_code
        lines = r.iter_lines()
        cid = None
        for line in lines:
            if line.startswith("data:") and '"connected"' in line:
                cid = json.loads(line[5:])["connection_id"]
                break
        assert cid is not None
        for i in range(n):
            marker = f"probe-{i}-"
            sent = time.perf_counter()
            server.hub.publish(cid, marker)
            for line in lines:
                if marker in line:
                    latencies.append(time.perf_counter() - sent)
                    break
    return latencies


def test_sse_push_latency_through_the_proxy_against_direct(
    lab: Lab, proxied_server: RunningServer
) -> None:
    n = 100
    direct = sse_push_latencies(f"{proxied_server.url}/sse", proxied_server, {}, n)
    proxied = sse_push_latencies(
        lab.proxied(proxied_server.port) + "sse", proxied_server, lab.auth, n
    )
    assert len(direct) == len(proxied) == n  # every push arrived on its own, through the proxy too
    figures = {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 2),
            "p90_ms": round(statistics.quantiles(values, n=10)[-1] * 1000, 2),
        }
        for name, values in (("direct", direct), ("proxied", proxied))
    }
    record("sse_push_latency_jupyter_server_proxy", pushes=n, **figures)
    print(figures)


def test_browser_url_and_a_widget_in_a_real_kernel(lab: Lab, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    link = run_notebook_in_lab(page, f"{lab.url}/lab/tree/widget.ipynb?token={TOKEN}")
    # The kernel found its Jupyter server (its parent process) and built the proxied link,
    # relative to JupyterLab's page; the notebook shows it as a link (RunningServer._repr_html_).
    assert link.startswith("/proxy/") and link.endswith("/"), link
    page = open_notebook_link(page, link)
    assert page.url == lab.url + link
    cid = start(page, "websocket")
    send(page, "websocket", "hello through the link")
    expect(entries(page, "websocket", "user_message")).to_have_count(1, timeout=5000)
    assert cid
    context.close()
