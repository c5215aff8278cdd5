"""WebTransport in Debian's Chromium: a page on http://127.0.0.1:PORT/ (a secure context) opens
``new WebTransport(url, {serverCertificateHashes})`` with what ``GET /webtransport`` says, reads
the stream the server opens, and sends a line back. Also the regression test for aioquic's
stream-marking workaround (h3_endpoint.py): the echo only comes if the server reads the page's
line on the stream it opened itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from transport_demo import RunningServer

from .browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

# QUIC on: the suite's usual launch (tests/browser.py) passes --disable-quic.
WEBTRANSPORT_ARGS = ["--no-sandbox", "--disable-gpu"]

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
        browser = launch_with_quic(playwright)
        try:
            yield browser
        finally:
            browser.close()


def launch_with_quic(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=WEBTRANSPORT_ARGS, headless=True
    )


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
