"""``--https``: the same app over TLS with HTTP/2 by ALPN (hypercorn), HTTP/1.1 still accepted;
the certificate made at start; the clients over HTTP/2; the contract across cuts; shutdown; the
command line; and in Chromium, ten EventSources on one HTTP/2 connection and a WebSocket on an
HTTP/2 stream (RFC 8441)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect, sync_playwright

from transport_demo import RunningServer, start_classroom
from transport_demo.clients import CLIENTS
from transport_demo.clients.base import BaseClient
from transport_demo.server.certificates import VALIDITY
from transport_demo.server.protocol import Transport
from transport_demo.server.settings import Settings
from transport_demo.server.transports import Part, having

from .browser import launch
from .waiting import until_async

pytestmark = pytest.mark.anyio


@pytest.fixture
def tls_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(https=True)


def test_alpn_picks_h2_and_http_1_1_is_still_served(tls_server: RunningServer) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    context = tls_server.ssl_context()
    with httpx.Client(http2=True, verify=context) as client:
        answer = client.post(tls_server.url + "/poll")
        assert answer.http_version == "HTTP/2" and answer.json()["type"] == "connected"
    with httpx.Client(verify=context) as client:  # no h2 offered: HTTP/1.1 over TLS
        answer = client.post(tls_server.url + "/poll")
        assert answer.http_version == "HTTP/1.1" and answer.status_code == 200
    with pytest.raises(httpx.ConnectError):  # a client that trusts only the system's CAs
        httpx.get(tls_server.url + "/stats")


def test_the_certificate_made_at_start(tls_server: RunningServer) -> None:
    certificate = tls_server.certificate
    assert certificate is not None
    parsed = x509.load_pem_x509_certificate(certificate.cert_file.read_bytes())
    public_key = parsed.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"  # what Chromium's hash pinning asks (HTTP/3)
    life = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    assert life == VALIDITY < datetime.timedelta(days=14)
    assert parsed.version is x509.Version.v3
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(a) for a in names.get_values_for_type(x509.IPAddress)]
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_file.read_text())
    assert certificate.sha256 == hashlib.sha256(der).digest()
    assert certificate.key_file.stat().st_mode & 0o077 == 0  # the key: the owner's alone
    assert Settings(https=True).allowed_origins[:2] == (
        "https://localhost:*",
        "https://127.0.0.1:*",
    )


def test_a_certificate_pair_is_both_or_neither() -> None:
    with pytest.raises(ValueError, match="both"):
        Settings(https=True, cert_file=Path("cert.pem"))
    with pytest.raises(ValueError, match="https=True"):
        Settings(cert_file=Path("cert.pem"), key_file=Path("key.pem"))


@pytest.mark.parametrize("transport", list(CLIENTS), ids=str)
async def test_each_client_over_https(tls_server: RunningServer, transport: Transport) -> None:
    client: BaseClient = CLIENTS[transport](
        tls_server.url, http2=True, verify=tls_server.ssl_context()
    )
    async with client:
        async for event in client:
            if event["type"] == "connected":
                await client.send("over TLS")
            elif event["type"] in ("message", "user_message"):
                assert event["message"] == "over TLS"
                break
    # The WebSocket client speaks RFC 6455's HTTP/1.1 upgrade (websockets has no RFC 8441);
    # WebTransport's session is HTTP/3 (UDP), with the same certificate.
    special = {Transport.WEBSOCKET: "HTTP/1.1", Transport.WEBTRANSPORT: "HTTP/3"}
    assert client.http_version == special.get(transport, "HTTP/2")


@pytest.mark.parametrize("transport", [Transport.LONG_POLLING, Transport.SSE], ids=str)
async def test_exactly_once_across_cuts_over_http2(
    make_server: Callable[..., RunningServer], transport: Transport
) -> None:
    server = make_server(https=True, resume_grace=10.0)
    client = CLIENTS[transport](
        server.url, http2=True, verify=server.ssl_context(), backoff_initial=0.05
    )
    seen: list[int] = []
    async with client:
        await until_async(lambda: client.connection_id is not None, what="connected")
        assert client.connection_id is not None
        for n in range(1, 31):
            server.hub.publish(client.connection_id, f"m{n}")
            if n % 10 == 0:
                server.hub.disconnect_all(transport)  # the stream or held poll is cut
        async for event in client:
            if event["type"] == "message":
                seen.append(event["seq"])
                if len(seen) == 30:
                    break
    assert seen == list(range(1, 31))  # none lost, none twice, in order
    assert client.http_version == "HTTP/2"


async def test_shutdown_within_two_seconds_with_streams_open(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(https=True)
    context = server.ssl_context()
    async with (
        httpx.AsyncClient(http2=True, verify=context, timeout=10) as http,
        http.stream("GET", server.url + "/sse") as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        # This client neither reads nor closes while the server stops: the stop must not wait
        # for it (TLS close_notify is bounded, https_server.SSL_SHUTDOWN_TIMEOUT).
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - started < 2.0
        assert not server.running


def test_the_command_line_serves_https_and_prints_the_fingerprint() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "transport_demo", "--https", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "open https://127.0.0.1:" in banner, banner
        fingerprint = process.stdout.readline()
        assert "certificate SHA-256 " in fingerprint
        assert len(fingerprint.split()[-1].split(":")) == 32
        url = banner.split()[2].rstrip("/")
        deadline = time.monotonic() + 10
        while True:
            try:
                with httpx.Client(http2=True, verify=False) as client:
                    assert client.get(url + "/stats").http_version == "HTTP/2"
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err


TEN_EVENTSOURCES = """async (url) => {
  const opened = [];
  const sources = [];
  for (let i = 0; i < 10; i++) {
    const source = new EventSource(url + "/sse");
    source.onmessage = () => { if (!opened.includes(i)) opened.push(i); };
    sources.push(source);
  }
  await new Promise((resolve) => setTimeout(resolve, 3000));
  sources.forEach((s) => s.close());
  return opened.length;
}"""

WEBSOCKET_ECHO = """async (url) => {
  const ws = new WebSocket(url.replace("https", "wss") + "/ws");
  return await new Promise((resolve, reject) => {
    ws.onmessage = (m) => {
      const event = JSON.parse(m.data);
      if (event.type === "connected") ws.send(JSON.stringify({message: "over one connection"}));
      if (event.type === "user_message") { window.openSocket = ws; resolve(event.message); }
    };
    ws.onerror = () => reject(new Error("websocket error"));
  });
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_chromium_ten_eventsources_over_http2_and_six_over_http_1_1(
    make_server: Callable[..., RunningServer],
) -> None:
    """The browser's six connections per origin (HTTP/1.1) against one HTTP/2 connection with up
    to SETTINGS_MAX_CONCURRENT_STREAMS streams; and the WebSocket on an HTTP/2 stream."""
    plain = make_server()
    tls = make_server(https=True)
    seen: list[dict[str, Any]] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.goto(plain.url + "/")
            assert page.evaluate(TEN_EVENTSOURCES, plain.url) == 6
            page.goto(tls.url + "/")
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
            assert protocol == "h2"
            assert page.evaluate(TEN_EVENTSOURCES, tls.url) == 10
            seen.append({"echo": page.evaluate(WEBSOCKET_ECHO, tls.url)})
            # RFC 8441: the WebSocket rides a stream of the page's own HTTP/2 connection, so the
            # browser holds one TCP connection to the server while the socket is open.
            seen.append({"tcp connections": established(tls.port)})
            page.evaluate("window.openSocket.close()")
        finally:
            browser.close()
    assert seen == [{"echo": "over one connection"}, {"tcp connections": 1}]


def established(port: int) -> int:
    """Established TCP connections to ``port`` on this machine, counted on the server's side."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("transport", [t.value for t in having(Part.PAGE)], ids=str)
def test_client_page_over_https(make_server: Callable[..., RunningServer], transport: str) -> None:
    """client.html's sections work unchanged over https: the page's own origin is https, the
    WebSocket URL follows it (wss), and the echo arrives with seq 1 (over HTTP/2 for the two that
    are plain requests)."""
    server = make_server(https=True, heartbeat_interval=0.5, poll_timeout=1.0)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(server.url + "/")
            part = page.locator(f'[data-transport="{transport}"]')
            part.locator('[data-action="start"]').click()
            expect(part.locator('[data-role="connection-id"]')).to_have_text(
                re.compile(r"^[0-9a-f-]{36}$"), timeout=10_000
            )
            field = part.locator('[data-role="input"]')
            field.fill("over https")
            field.press("Enter")
            echo = part.locator('[data-role="log"] [data-seq="1"]').filter(has_text="over https")
            expect(echo).to_have_count(1, timeout=10_000)
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
        finally:
            browser.close()
    assert protocol == "h2"


def test_a_classroom_over_https() -> None:
    """--classroom --https: the join URL and the allowed origins say https; the join page is
    served over HTTP/2 with the certificate made for the join host."""
    room = start_classroom(port=0, host="127.0.0.1", https=True)
    server = room.server
    try:
        assert server.settings.join_url(server.port).startswith("https://127.0.0.1:")
        assert all(o.startswith("https://") for o in server.settings.allowed_origins)
        assert server.certificate is not None and "127.0.0.1" in server.certificate.names
        with httpx.Client(http2=True, verify=server.ssl_context()) as client:
            answer = client.get(server.url + "/join")
            assert answer.http_version == "HTTP/2" and answer.status_code == 200
            refused = client.post(server.url + "/poll", headers={"Origin": "http://127.0.0.1:1"})
            assert refused.status_code == 403  # the plain-http origin is not the room's
    finally:
        server.stop()
