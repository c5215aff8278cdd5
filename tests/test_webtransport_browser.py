"""WebTransport in Debian's Chromium: a page on http://127.0.0.1:PORT/ (a secure context) opens
``new WebTransport(url, {serverCertificateHashes})`` with what ``GET /webtransport`` says, reads
the stream the server opens, and sends a line back. Also the regression test for aioquic's
stream-marking workaround (h3_endpoint.py): the echo only comes if the server reads the page's
line on the stream it opened itself. Then client.html's fourth section, the same checks as the
other three sections' (tests/test_client_page.py), and what it says where it cannot run."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from transport_demo import RunningServer

from .browser import CHROMIUM, launch

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
        reason="Debian's chromium is not installed",
    ),
]


OPEN = """async ({url, hash}) => {
  const value = Uint8Array.from(hash.match(/../g).map((h) => parseInt(h, 16)));
  const wt = new WebTransport(url, {serverCertificateHashes: [{algorithm: "sha-256", value}]});
  await wt.ready;
  const incoming = wt.incomingBidirectionalStreams.getReader();
  const {value: stream} = await incoming.read();
  const reader = stream.readable.pipeThrough(new TextDecoderStream()).getReader();
  const writer = stream.writable.getWriter();
  let buffer = "";
  const next = async () => {
    for (;;) {
      const end = buffer.indexOf("\\n");
      if (end >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        return JSON.parse(line);
      }
      const {value, done} = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += value;
    }
  };
  const send = (text) =>
    writer.write(new TextEncoder().encode(JSON.stringify({message: text}) + "\\n"));
  window.session = {wt, next, send};
  const events = [await next()];
  while (events.filter((e) => e.type === "heartbeat").length < 2) events.push(await next());
  return events;
}"""

ECHO = """async (text) => {
  await window.session.send(text);
  for (;;) {
    const event = await window.session.next();
    if (event.type === "user_message") return event;
  }
}"""

CLOSED = """async () => {
  try {
    const info = await window.session.wt.closed;
    return {closeCode: info.closeCode, reason: info.reason};
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def open_session(server: RunningServer, page: Page) -> list[dict[str, Any]]:
    page.goto(server.url + "/")
    where = page.evaluate("fetch('/webtransport').then((r) => r.json())")
    events: list[dict[str, Any]] = page.evaluate(
        OPEN, {"url": where["url"], "hash": where["cert_sha256"]}
    )
    return events


def test_a_page_reads_connected_and_heartbeats_and_gets_its_echo_with_seq(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    server = make_server(heartbeat_interval=0.3)
    page = browser.new_context().new_page()  # a fresh context each run
    events = open_session(server, page)
    connected = events[0]
    assert connected["type"] == "connected" and connected["transport"] == "webtransport"
    beats = [e for e in events if e["type"] == "heartbeat"]
    assert [b["count"] for b in beats] == [1, 2]
    echo = page.evaluate(ECHO, "from the page")
    assert (echo["seq"], echo["message"]) == (1, "from the page")
    cid = connected["connection_id"]
    assert server.hub.state_of(cid) == "live"
    server.hub.publish(cid, "from the kernel")
    pushed = page.evaluate(
        "async () => { for (;;) { const e = await window.session.next();"
        " if (e.type === 'message') return e; } }"
    )
    assert (pushed["seq"], pushed["message"]) == (2, "from the kernel")


def test_a_cut_reaches_the_page_as_close_code_1012(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    server = make_server(heartbeat_interval=0.3)
    page = browser.new_context().new_page()
    cid = open_session(server, page)[0]["connection_id"]
    assert server.hub.disconnect(cid)
    closed = page.evaluate(CLOSED)
    assert closed == {
        "closeCode": 1012,
        "reason": "cut by the server: reconnect after a randomized delay",
    }


REFUSED = """async ({url, hash}) => {
  const value = Uint8Array.from(hash.match(/../g).map((h) => parseInt(h, 16)));
  const wt = new WebTransport(url, {serverCertificateHashes: [{algorithm: "sha-256", value}]});
  try {
    await wt.ready;
    return "opened";
  } catch (error) {
    return String(error);
  }
}"""


def test_a_page_from_an_origin_not_allowed_is_refused(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    """Chromium sends the page's Origin with the session's CONNECT; the allow-list refuses it."""
    server = make_server(allowed_origins=["http://localhost:*"])
    elsewhere = make_server()  # the page comes from another port: another origin
    page = browser.new_context().new_page()
    page.goto(elsewhere.url + "/")
    where = httpx.get(server.url + "/webtransport").json()
    outcome = page.evaluate(REFUSED, {"url": where["url"], "hash": where["cert_sha256"]})
    assert outcome != "opened" and "WebTransportError" in outcome
    assert server.hub.stats()["total"] == 0
    welcoming = make_server()  # the default list has http://127.0.0.1:*: the same page gets in
    where = httpx.get(welcoming.url + "/webtransport").json()
    assert page.evaluate(REFUSED, {"url": where["url"], "hash": where["cert_sha256"]}) == "opened"


# -- client.html's fourth section ------------------------------------------------------------

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def wt_section(page: Page) -> Locator:
    return page.locator('[data-transport="webtransport"]')


def wt_entries(page: Page, kind: str) -> Locator:
    return wt_section(page).locator(f'[data-role="log"] [data-type="{kind}"]')


def start_section(page: Page) -> str:
    part = wt_section(page)
    part.locator('[data-action="start"]').click()
    cid = part.locator('[data-role="connection-id"]')
    expect(cid).to_have_text(UUID, timeout=10_000)
    return cid.inner_text()


def send_text(page: Page, text: str) -> None:
    field = wt_section(page).locator('[data-role="input"]')
    field.fill(text)
    field.press("Enter")


def counter(page: Page, role: str) -> str:
    return wt_section(page).locator(f'[data-role="{role}"]').inner_text()


def test_the_page_section_echoes_in_order_takes_pushes_and_resumes_after_a_cut(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    server = make_server(heartbeat_interval=0.3, resume_grace=10.0)
    page = browser.new_context().new_page()
    page.goto(server.url + "/")
    cid = start_section(page)
    assert server.hub.state_of(cid) == "live"
    expect(wt_section(page).locator('[data-role="status"]')).to_have_text("open")
    # heartbeats by themselves, before anything is sent
    expect(wt_entries(page, "heartbeat").nth(1)).to_be_visible(timeout=5000)
    expect(wt_section(page).locator('[data-role="mechanics"]')).to_contain_text("stream")
    payload = "<img src=x onerror=window.__xss=1>"  # text, never HTML
    for i in range(10):
        send_text(page, f"text {i} {payload}")
    echoes = wt_entries(page, "user_message")
    expect(echoes).to_have_count(10, timeout=10_000)
    texts = [re.search(r"text \d+", t).group(0) for t in echoes.all_inner_texts()]  # type: ignore[union-attr]
    assert texts == [f"text {i}" for i in range(10)]
    assert [e.get_attribute("data-seq") for e in echoes.all()] == [str(s) for s in range(1, 11)]
    assert page.evaluate("window.__xss") is None
    assert wt_section(page).locator('[data-role="log"] img').count() == 0
    # a push from the kernel's side: to this connection, then to everyone
    assert server.hub.publish(cid, "from the kernel") == 11
    assert server.hub.broadcast("to everyone") == 1
    pushed = wt_entries(page, "message")
    expect(pushed).to_have_count(2, timeout=5000)
    assert [e.get_attribute("data-seq") for e in pushed.all()] == ["11", "12"]
    # a cut by the server (close 1012); published while the page is away: replayed once
    assert server.hub.disconnect(cid)
    assert server.hub.publish(cid, "while cut") == 13
    expect(wt_entries(page, "reconnected")).to_have_count(1, timeout=10_000)
    expect(pushed.filter(has_text="while cut")).to_have_count(1, timeout=5000)
    assert pushed.filter(has_text="while cut").get_attribute("data-seq") == "13"
    expect(wt_entries(page, "reconnecting")).to_contain_text("1012")
    expect(wt_entries(page, "connected").last).to_contain_text("resumed")
    send_text(page, "after the cut")
    expect(echoes.filter(has_text="after the cut")).to_have_count(1, timeout=5000)
    assert echoes.filter(has_text="after the cut").get_attribute("data-seq") == "14"
    assert counter(page, "connection-id") == cid
    assert (counter(page, "reconnects"), counter(page, "duplicates")) == ("1", "0")
    assert (counter(page, "gaps"), counter(page, "messages")) == ("0", "14")
    wt_section(page).locator('[data-action="stop"]').click()
    expect(wt_section(page).locator('[data-role="status"]')).to_have_text(re.compile("closed"))
    deadline = time.monotonic() + 5
    while server.hub.state_of(cid) != "disconnected":
        assert time.monotonic() < deadline, "Stop did not end the session"
        time.sleep(0.05)


def test_two_pages_sections_are_isolated(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    server = make_server(heartbeat_interval=0.3)
    first, second = (browser.new_context().new_page() for _ in range(2))
    for page in (first, second):
        page.goto(server.url + "/")
    a, b = start_section(first), start_section(second)
    assert a != b
    send_text(first, "only for the first page")
    expect(wt_entries(first, "user_message")).to_have_count(1, timeout=5000)
    server.hub.publish(b, "only for the second page")
    expect(wt_entries(second, "message")).to_have_count(1, timeout=5000)
    time.sleep(0.5)  # an absence: give a wrongly routed event time to show up
    assert "only for the first page" not in wt_section(second).inner_text()
    assert "only for the second page" not in wt_section(first).inner_text()


def test_the_section_says_plainly_when_it_cannot_run(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    server = make_server()
    page = browser.new_context().new_page()
    page.add_init_script("delete window.WebTransport")  # a browser without the API
    page.goto(server.url + "/")
    notice = wt_section(page).locator('[data-role="unavailable"]')
    expect(notice).to_contain_text("This browser has no WebTransport")
    expect(wt_section(page).locator('[data-action="start"]')).to_be_disabled()
    expect(page.locator('[data-transport="websocket"] [data-action="start"]')).to_be_enabled()
    off = make_server(webtransport=False)  # a server that serves none: GET /webtransport is 404
    page = browser.new_context().new_page()
    page.goto(off.url + "/")
    notice = wt_section(page).locator('[data-role="unavailable"]')
    expect(notice).to_contain_text("This server serves no WebTransport")
    expect(wt_section(page).locator('[data-action="start"]')).to_be_disabled()
    # the Server field pointed at one that serves it: the section can run again
    field = page.locator('[data-role="server-url"]')
    field.fill(server.url)
    field.press("Enter")
    expect(notice).to_be_hidden()
    assert start_section(page) in server.hub


def test_the_page_section_works_on_a_page_served_over_https(
    make_server: Callable[..., RunningServer], browser: Browser
) -> None:
    """A room needs --https for LAN pages to be secure contexts: the page then comes over HTTP/2
    and the session over HTTP/3 with the same certificate (pinned by its hash, as on http)."""
    server = make_server(https=True, heartbeat_interval=0.3)
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(server.url + "/")
    start_section(page)
    send_text(page, "over https")
    echo = wt_entries(page, "user_message").filter(has_text="over https")
    expect(echo).to_have_count(1, timeout=5000)
    assert echo.get_attribute("data-seq") == "1"
    assert page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
