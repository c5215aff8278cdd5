"""The browser-side widgets in real JupyterLab in Chromium, under Run All: each transport starts
(``start=True`` or ``start()`` in its cell, no click), sees heartbeats
or timeouts, sends and gets its echo; what the page learns while a cell runs reaches the kernel
after it, all of it; EventSource comes back by itself after the server was gone
for a few seconds and resumes with nothing lost or doubled, while the WebSocket stays closed; the
seventh EventSource to one server waits, and seven WebSockets do not, while ten EventSources to
an HTTP/2 server all open (notebook 06); stopped, the table keeps what each stream did.

The server and a shaped network in front of it run in this test process; the notebook's widgets
point the page at them, so the test can take the server away (``Network.outage``), restart it (its
connections kept in a store that outlives the process's server, as a durable store would) and
publish.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from transport_demo.lab.network import Network, network
from transport_demo.lab.no_content import NoContentServer
from transport_demo.server import launcher as server_module
from transport_demo.server.launcher import RunningServer, start_server

from .jupyter import KERNEL_READY, RUN_IN_KERNEL, running_jupyterlab, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]


def _notebook(widgets_url: str, limit_url: str, h2_url: str) -> dict[str, Any]:
    cells = [
        "from transport_demo.widgets.browser import (BrowserLongPollWidget, BrowserSSEWidget,\n"
        "    BrowserWebSocketWidget, ConnectionLimitDemo)",
        f'sse = BrowserSSEWidget("{widgets_url}", start=True); sse',  # starts as it shows
        f'ws = BrowserWebSocketWidget("{widgets_url}"); ws.start(); ws',
        f'lp = BrowserLongPollWidget("{widgets_url}"); lp.start(); lp',
        f'wsr = BrowserWebSocketWidget("{widgets_url}", reconnect=True); wsr.start(); wsr',
        f'streams = ConnectionLimitDemo("{limit_url}", count=7, start=True); streams',
        f'sockets = ConnectionLimitDemo("{limit_url}", kind="websocket"); sockets.start(); sockets',
        f'over_http2 = ConnectionLimitDemo("{h2_url}", count=10, start=True); over_http2',
    ]
    return {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": s, "outputs": [],
             "execution_count": None}
            for s in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip


SETTINGS: dict[str, Any] = {
    "heartbeat_interval": 1,
    "poll_timeout": 1,
    "poll_expiry": 30,
    "resume_grace": 30,
}


@pytest.fixture
def servers() -> Iterator[tuple[RunningServer, Network, Network]]:
    server = start_server(port=0, **SETTINGS)
    with network(server) as widgets_net, network(server) as limit_net:
        yield server, widgets_net, limit_net
    server_module.stop_all()


@pytest.fixture
def lab(tmp_path: Path, servers: tuple[RunningServer, Network, Network]) -> Iterator[str]:
    _, widgets_net, limit_net = servers
    h2 = start_server(port=0, https=True, **SETTINGS)  # stopped with the others (stop_all)
    (tmp_path / "browser.ipynb").write_text(
        json.dumps(_notebook(widgets_net.url, limit_net.url, h2.url)), encoding="utf-8"
    )
    token = "transport-demo-test"
    with running_jupyterlab(tmp_path, token) as url:
        yield f"{url}/lab/tree/browser.ipynb?token={token}"


def _panel(page: Any, title: str) -> Any:
    return page.locator(".tdb").filter(has_text=title)


def _counter(panel: Any, name: str) -> int:
    text = panel.locator(".tdb-counter").filter(has_text=re.compile(f"^{name} ")).inner_text()
    return int(text.split()[-1])


def _wait(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not seen within {timeout} s"
        time.sleep(0.2)


def _connection_id(panel: Any) -> str:
    found = re.search(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        panel.locator(".tdb-status").inner_text(),
    )
    assert found, panel.locator(".tdb-status").inner_text()
    return found.group(0)


def test_browser_clients_in_jupyterlab(
    lab: str, servers: tuple[RunningServer, Network, Network]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from .browser import launch

    server, widgets_net, _ = servers
    with sync_playwright() as playwright:
        browser = launch(playwright)
        # The HTTP/2 server's certificate is self-signed: the page's streams to it need the
        # browser to accept it, as a student does once in a tab (notebook 06).
        page = browser.new_page(viewport={"width": 1400, "height": 2400}, ignore_https_errors=True)
        page.goto(lab)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
        page.wait_for_function(KERNEL_READY, timeout=60_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        sse, ws = _panel(page, "EventSource"), _panel(page, "WebSocket —")
        lp = _panel(page, "Long polling")
        wsr = _panel(page, "reconnected by the page")
        for panel in (sse, ws, lp, wsr):  # each starts: open, with a connection id
            expect(panel.locator(".tdb-status")).to_contain_text(
                re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-"), timeout=90_000
            )
        _wait(lambda: _counter(sse, "heartbeats") >= 2, "SSE heartbeats")
        _wait(lambda: _counter(ws, "heartbeats") >= 2, "WebSocket heartbeats")
        _wait(lambda: _counter(lp, "timeouts") >= 2, "long-poll timeouts")
        expect(sse.locator(".tdb-status")).to_contain_text("readyState OPEN")
        expect(ws.locator(".tdb-status")).to_contain_text("bufferedAmount 0")

        for name, panel in (("sse", sse), ("ws", ws), ("lp", lp)):  # send, see the echo
            panel.locator("input").fill(f"hello from {name}")
            panel.locator("input").press("Enter")
            expect(panel.locator(".tdb-entry").filter(has_text=f"hello from {name}")).to_be_visible(
                timeout=15_000
            )

        # While a cell runs, the page's updates wait for the kernel; none is lost.
        sse_id = _connection_id(sse)
        page.evaluate(
            "([run, code]) => { window.tdBusy = eval(run)(code); }",
            [RUN_IN_KERNEL, "import time; time.sleep(3)"],
        )
        for i in range(5):
            server.hub.publish(sse_id, f"during a busy cell {i}")
        expect(sse.locator(".tdb-entry").filter(has_text="during a busy cell 4")).to_be_visible(
            timeout=15_000
        )
        page.evaluate("() => window.tdBusy")  # the busy cell is over
        shown = _counter(sse, "messages")
        kernel_sees = page.evaluate(
            RUN_IN_KERNEL,
            "print(sse.stats['messages'],"
            " [e['text'] for e in sse.events if e['type'] == 'message'][-1])",
        )
        assert kernel_sees.split(" ", 1) == [str(shown), "during a busy cell 4\n"], kernel_sees

        # The server goes away for 3 s, with messages published meanwhile.
        sse_id, lp_id, wsr_id = _connection_id(sse), _connection_id(lp), _connection_id(wsr)
        ws_id = _connection_id(ws)
        before = _counter(sse, "messages")
        widgets_net.outage(3)
        for i in range(5):
            server.hub.publish(sse_id, f"while away {i}")
            server.hub.publish(lp_id, f"while away {i}")
            server.hub.publish(wsr_id, f"while away {i}")
            server.hub.publish(ws_id, f"while away {i}")
        expect(ws.locator(".tdb-status")).to_contain_text("closed", timeout=15_000)
        expect(sse.locator(".tdb-entry").filter(has_text="while away 4")).to_be_visible(
            timeout=30_000
        )
        expect(lp.locator(".tdb-entry").filter(has_text="while away 4")).to_be_visible(
            timeout=30_000
        )
        # EventSource came back by itself, on the same connection (Last-Event-ID): all five, once.
        assert _connection_id(sse) == sse_id
        assert _counter(sse, "messages") == before + 5
        assert _counter(sse, "duplicates") == 0 and _counter(sse, "gaps") == 0
        assert _counter(sse, "reconnects") >= 1
        expect(sse.locator(".tdb-entry").filter(has_text="resumed")).to_be_visible()
        assert _counter(lp, "duplicates") == 0 and _counter(lp, "gaps") == 0
        # A WebSocket the page's code reconnects resumes too (?connection_id=…&last_seq=…).
        expect(wsr.locator(".tdb-entry").filter(has_text="while away 4")).to_be_visible(
            timeout=30_000
        )
        assert _connection_id(wsr) == wsr_id
        assert _counter(wsr, "duplicates") == 0 and _counter(wsr, "gaps") == 0
        # The WebSocket did not: it stays closed until the page's code opens a new one.
        time.sleep(2)
        expect(ws.locator(".tdb-status")).to_contain_text("readyState CLOSED")
        expect(ws.locator(".tdb-entry").filter(has_text="does not reconnect")).to_be_visible()
        ws.locator(".tdb-start").click()  # the page's code opens a new socket, resuming
        expect(ws.locator(".tdb-entry").filter(has_text="while away 4")).to_be_visible(
            timeout=15_000
        )
        assert _connection_id(ws) == ws_id
        assert _counter(ws, "duplicates") == 0 and _counter(ws, "gaps") == 0

        # Seven EventSources to one HTTP/1.1 server: six open, the seventh waits.
        grids = page.locator(".tdl-grid")
        streams, sockets = grids.nth(0), grids.nth(1)
        expect(streams.locator("td[data-state='OPEN']")).to_have_count(6, timeout=30_000)
        time.sleep(2)
        expect(streams.locator("td[data-state='OPEN']")).to_have_count(6)
        expect(streams.locator("tr").nth(7)).to_contain_text("waiting")
        # Seven WebSockets to the same server: all open (WebSockets have their own pool).
        expect(sockets.locator("td[data-state='OPEN']")).to_have_count(7, timeout=30_000)
        # Ten EventSources to an HTTP/2 server: all open, streams of one connection.
        expect(grids.nth(2).locator("td[data-state='OPEN']")).to_have_count(10, timeout=30_000)
        # Stopped (a teardown under Run All): the table keeps what the page saw.
        page.evaluate(RUN_IN_KERNEL, "streams.stop()")
        expect(streams.locator("td[data-state='CLOSED']")).to_have_count(7, timeout=15_000)
        expect(streams.locator("tr").nth(7)).to_contain_text("never: closed after waiting")
        expect(page.locator(".tdl-summary").nth(0)).to_contain_text("6 of 7 opened")

        # A restart: the server's loop and sockets go, its hub (the connections) stays.
        # EventSource comes back by itself and resumes: nothing lost or doubled.
        before = _counter(sse, "messages")
        server.restart(down_for=1.5)  # down for longer than the stream's retry: 1000
        for i in range(3):
            server.hub.publish(sse_id, f"after the restart {i}")
        expect(sse.locator(".tdb-entry").filter(has_text="after the restart 2")).to_be_visible(
            timeout=30_000
        )
        assert _connection_id(sse) == sse_id
        assert _counter(sse, "messages") == before + 3
        assert _counter(sse, "duplicates") == 0 and _counter(sse, "gaps") == 0

        # A server that answers 204 stops EventSource for good: it stays closed after the
        # real server is back.
        port = server.port
        server.stop()
        with NoContentServer(port) as stand_in:
            expect(sse.locator(".tdb-entry").filter(has_text="gave up for good")).to_be_visible(
                timeout=30_000
            )
            assert stand_in.answered >= 1
        start_server(port=port, **SETTINGS)
        time.sleep(3)  # three times the stream's retry: 1000
        expect(sse.locator(".tdb-status")).to_contain_text("readyState CLOSED")
        page.evaluate(RUN_IN_KERNEL, "lp.stop()")  # Stop (or a teardown) says so in the log
        expect(lp.locator(".tdb-entry").filter(has_text="closed by Stop")).to_be_visible(
            timeout=15_000
        )
        browser.close()


def test_the_page_webtransport_widget_in_jupyterlab(tmp_path: Path) -> None:
    """The page's own WebTransport from a widget (Chromium with QUIC on, as
    test_webtransport_browser.py launches it): it starts as it shows, heartbeats, echoes, takes
    a push, comes back after a server-side cut with nothing lost or doubled; a widget whose page
    would reach the server through jupyter-server-proxy says it cannot, and its Start is off."""
    from playwright.sync_api import expect, sync_playwright

    from .browser import launch

    server = start_server(port=0, heartbeat_interval=0.5, resume_grace=30)
    write_notebook(
        tmp_path / "wt.ipynb",
        [
            "from transport_demo.widgets import BrowserWebTransportWidget",
            f'wt = BrowserWebTransportWidget("{server.url}", reconnect=True, start=True); wt',
            'proxied = BrowserWebTransportWidget("proxy/8000"); proxied.start(); proxied',
        ],
    )
    token = "transport-demo-test"
    try:
        with running_jupyterlab(tmp_path, token) as url, sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_context().new_page()
            page.goto(f"{url}/lab/tree/wt.ipynb?token={token}")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
            page.wait_for_function(KERNEL_READY, timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            wt, proxied = page.locator(".tdb").nth(0), page.locator(".tdb").nth(1)
            expect(wt.locator(".tdb-status")).to_contain_text(
                re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-"), timeout=60_000
            )
            expect(wt.locator(".tdb-status")).to_contain_text("readyState OPEN")
            _wait(lambda: _counter(wt, "heartbeats") >= 2, "WebTransport heartbeats")
            wt.locator("input").fill("hello over QUIC")
            wt.locator("input").press("Enter")
            echo = wt.locator(".tdb-entry[data-type='user_message']")
            expect(echo.filter(has_text="#1  hello over QUIC")).to_have_count(1, timeout=15_000)
            cid = _connection_id(wt)
            assert server.hub.publish(cid, "from the kernel") == 2
            expect(wt.locator(".tdb-entry").filter(has_text="from the kernel")).to_be_visible()
            assert server.hub.disconnect(cid)  # close 1012: the page's code comes back
            server.hub.publish(cid, "while cut")
            entry = wt.locator(".tdb-entry[data-type='message']").filter(has_text="while cut")
            expect(entry).to_have_count(1, timeout=15_000)
            expect(entry).to_contain_text("#3")
            expect(wt.locator(".tdb-entry").filter(has_text="code 1012")).to_have_count(1)
            assert _connection_id(wt) == cid
            _wait(lambda: _counter(wt, "messages") == 3, "three messages in the counters")
            assert (_counter(wt, "duplicates"), _counter(wt, "gaps")) == (0, 0)
            assert _counter(wt, "reconnects") == 1
            # Behind jupyter-server-proxy the page cannot reach the kernel over UDP: it says so.
            expect(proxied.locator(".tdb-unavailable")).to_contain_text("jupyter-server-proxy")
            expect(proxied.locator(".tdb-start")).to_be_disabled()
            expect(proxied.locator(".tdb-entry[data-type='unavailable']")).to_have_count(1)
            seen = page.evaluate(
                RUN_IN_KERNEL,
                "print(wt.stats['messages'], repr(wt.unavailable), proxied.status,"
                " 'UDP' in proxied.unavailable)",
            )
            assert seen == "3 '' unavailable True\n", seen
            browser.close()
    finally:
        server.stop()
