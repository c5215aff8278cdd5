"""A page in Debian's Chromium reaches WebTransport through the shaper's UDP relay (issue 24): the
page is loaded from the relay, ``GET /webtransport`` through it names the relay's port, and the
session (QUIC) goes through the relay's UDP half; heartbeats asked as datagrams arrive on
``wt.datagrams``, and the echo with its seq on the stream."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from transport_demo import RunningServer
from transport_demo.lab.network import network

from .browser import CHROMIUM, launch

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
        reason="Debian's chromium is not installed",
    ),
]

SESSION = """async ({url, hash}) => {
  const value = Uint8Array.from(hash.match(/../g).map((h) => parseInt(h, 16)));
  const wt = new WebTransport(url + "?heartbeats=datagram",
                              {serverCertificateHashes: [{algorithm: "sha-256", value}]});
  await wt.ready;
  const datagrams = wt.datagrams.readable.getReader();
  const {value: first} = await datagrams.read();
  const heartbeat = JSON.parse(new TextDecoder().decode(first));
  const {value: stream} = await wt.incomingBidirectionalStreams.getReader().read();
  const reader = stream.readable.pipeThrough(new TextDecoderStream()).getReader();
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({message: "via the relay"}) + "\\n"));
  let buffer = "";
  const events = [];
  while (!events.some((e) => e.type === "user_message")) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\\n")) >= 0) {
      events.push(JSON.parse(buffer.slice(0, end)));
      buffer = buffer.slice(end + 1);
    }
  }
  wt.close();
  return {heartbeat, events};
}"""


def test_a_page_opens_its_session_through_the_udp_relay_with_datagram_heartbeats(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(heartbeat_interval=0.1)
    with network(server, delay_ms=10) as net, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context().new_page()
            page.goto(net.url + "/")
            where = page.evaluate("fetch('/webtransport').then((r) => r.json())")
            assert where["url"] == f"https://127.0.0.1:{net.port}/wt"  # the relay's port
            result: dict[str, Any] = page.evaluate(
                SESSION, {"url": where["url"], "hash": where["cert_sha256"]}
            )
        finally:
            browser.close()
        assert net.udp is not None and net.udp.flows >= 1 and net.datagrams > 10
    assert result["heartbeat"]["type"] == "heartbeat"  # a datagram, read from wt.datagrams
    kinds = [e["type"] for e in result["events"]]
    assert kinds[0] == "connected" and "heartbeat" not in kinds  # heartbeats left the stream
    echo = result["events"][-1]
    assert (echo["type"], echo["seq"], echo["message"]) == ("user_message", 1, "via the relay")
