"""The browser widgets' kernel side, without a browser: URLs, commands as state (so nothing sent
before display is lost), the JavaScript they ship. The page side is tested in JupyterLab in
Chromium (tests/test_browser_widgets.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from transport_demo.widgets.browser import (
    JS,
    BrowserLongPollWidget,
    BrowserSSEWidget,
    BrowserWebSocketWidget,
    ConnectionLimitDemo,
    page_url,
    wait_for_page,
    wait_until,
)

WIDGETS = (BrowserLongPollWidget, BrowserSSEWidget, BrowserWebSocketWidget)


def test_page_url_prefers_the_browser_url() -> None:
    assert page_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert page_url(SimpleNamespace(url="http://127.0.0.1:8000")) == "http://127.0.0.1:8000"
    proxied = SimpleNamespace(url="http://127.0.0.1:8000", browser_url="proxy/8000")
    assert page_url(proxied) == "proxy/8000"


@pytest.mark.parametrize("cls", WIDGETS)
def test_commands_are_state_the_page_reads_when_it_comes(cls: type[BrowserSSEWidget]) -> None:
    w = cls("http://127.0.0.1:8000")
    assert (w.running, w.status, w.stats, w.events) == (False, "idle", {}, [])
    w.start()
    w.send("one")
    w.send("two")
    w.clear()
    assert w.running and w.outbox == [[1, "one"], [2, "two"]] and w.clear_count == 1
    w.start()  # again: the page starts a new client if its old one gave up
    assert w.start_count == 2
    w.stop()
    assert not w.running
    assert w.transport == cls.transport_name


def test_the_outbox_is_bounded_and_ids_keep_growing() -> None:
    w = BrowserSSEWidget("http://127.0.0.1:8000")
    for i in range(150):
        w.send(str(i))
    assert len(w.outbox) == 100 and w.outbox[-1] == [150, "149"] and w.outbox[0][0] == 51


@pytest.mark.parametrize("cls", WIDGETS)
def test_each_widget_ships_its_page_code_and_the_shell(cls: type[BrowserSSEWidget]) -> None:
    page = (JS / cls.page_file).read_text()
    assert cls._esm.startswith(page) and "export default { initialize, render }" in cls._esm
    assert page.count("\n") <= 60  # short enough to read in class
    assert "function connect(base, show, options)" in page
    assert cls.page_code().data == page


def test_no_javascript_renders_text_as_html() -> None:
    for path in JS.glob("*.js"):
        assert not re.search(
            r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", path.read_text()
        ), path


def test_connection_limit_demo() -> None:
    demo = ConnectionLimitDemo("http://127.0.0.1:8000", kind="websocket", count=9)
    assert (demo.kind, demo.count, demo.opened) == ("websocket", 9, 0)
    demo.start()
    demo.close_one()
    assert demo.running and demo.close_count == 1
    demo.streams = [{"state": "OPEN", "opened_ms": 3}, {"state": "CONNECTING", "opened_ms": None}]
    assert demo.opened == 1
    with pytest.raises(ValueError):
        ConnectionLimitDemo("http://127.0.0.1:8000", kind="carrier pigeon")


def test_a_network_gives_the_page_its_browser_url() -> None:
    from transport_demo.lab.network import network

    with network(8000) as link:
        assert page_url(link) == link.browser_url
        assert link.browser_url.rstrip("/") == link.url  # no Jupyter proxy here


@pytest.mark.parametrize("cls", WIDGETS)
def test_start_true_is_in_the_state_the_page_gets_with_the_widget(
    cls: type[BrowserSSEWidget],
) -> None:
    w = cls("http://127.0.0.1:8000", start=True)
    assert w.get_state()["running"] is True  # no later message needed: holds under Run All
    assert cls("http://127.0.0.1:8000").get_state()["running"] is False
    demo = ConnectionLimitDemo("http://127.0.0.1:8000", start=True)
    assert demo.get_state()["running"] is True


def test_wait_for_page_watches_the_relay_not_the_page() -> None:
    link = SimpleNamespace(active=0)
    assert wait_for_page(link, timeout=0.1) is False  # headless: nobody connects
    link.active = 3
    assert wait_for_page(link, count=3, timeout=0.1, settle=0) is True
    assert wait_for_page(link, count=4, timeout=0.1) is False


def test_the_limit_table_keeps_what_it_saw_after_stop() -> None:
    script = (JS / "limit.js").read_text()
    assert "waited_ms" in script and "never: closed after waiting" in script


def test_wait_until() -> None:
    calls = iter([False, False, True])
    assert wait_until(lambda: next(calls), timeout=5) is True
    assert wait_until(lambda: False, timeout=0.1) is False
