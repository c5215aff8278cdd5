"""The security lab's instruments (notebook 05b): each attack of docs/threat-model.md made for real
against a running server, with what the browser believes beside what the server sees.

* :func:`rebinding` — a DNS-rebinding page's requests: the page thinks it talks to its own site
  (``http://attacker.example:PORT``, whose name now resolves to 127.0.0.1); the server gets a
  request on its own address whose ``Host`` names the attacker's site. Side by side with the same
  request from a page this server served.
* :func:`cors_answers` — what the CORS layer answers to no ``Origin``, an allowed one and a
  foreign one: ``Access-Control-Allow-Origin`` and ``Vary``.
* :func:`watch_socket` and :func:`side_by_side` — two WebSocket clients, the second resuming the
  first one's connection id: what a leaked id gives away.
* :func:`mixed_content` — ``new WebSocket(...)`` from an https page in a headless Chromium (when
  Playwright and a Chromium are installed): what is blocked, and what is not.

Everything is synchronous (threads where something must run meanwhile), so it runs in a cell.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ..server.launcher import start_server
from ..server.urls import endpoint_url

__all__ = [
    "REBOUND_HOST",
    "CorsAnswer",
    "MixedContent",
    "Rebound",
    "WatchedSocket",
    "cors_answers",
    "mixed_content",
    "rebinding",
    "side_by_side",
    "watch_socket",
]

REBOUND_HOST = "attacker.example"
"""The rebinding page's site (``.example`` is reserved for examples: RFC 2606 §3)."""


def _columns(left: list[str], right: list[str], width: int = 48) -> str:
    """Two columns of lines, ``left`` padded to ``width``."""
    rows = max(len(left), len(right))
    left, right = left + [""] * (rows - len(left)), right + [""] * (rows - len(right))
    return "\n".join(f"{a:<{width}} │ {b}".rstrip() for a, b in zip(left, right, strict=True))


@dataclass(frozen=True)
class Rebound:
    """One request as the page made it and as the server got it."""

    page: str  # the page's own origin, e.g. http://attacker.example:8015
    method: str
    path: str
    address: str  # where the bytes went: the server's address
    origin: str | None  # the Origin header the browser adds (None: same-origin GET/HEAD)
    status: int
    error: str | None  # the error code in the answer, if any
    connection_id: str | None  # what a POST /poll that got through was given

    def views(self) -> tuple[list[str], list[str]]:
        """The page's view and the server's view, line by line."""
        host = urlsplit(self.page).netloc
        page = [
            f"{self.method} {self.page}{self.path}",
            "same origin as the page: no CORS check,",
            "the page may read the answer",
        ]
        seen = f"Origin: {self.origin}" if self.origin else "no Origin (a same-origin GET)"
        answer = f"→ {self.status}" + (f" {self.error}" if self.error else "")
        if self.connection_id:
            answer += f", connection {self.connection_id[:8]}… opened"
        server = [f"a request on {self.address}", f"Host: {host}", seen, answer]
        return page, server


@dataclass(frozen=True)
class Rebinding:
    """The same request from a page this server served and from the rebound page."""

    ours: Rebound
    rebound: Rebound

    def __repr__(self) -> str:
        header = _columns(["THE PAGE'S VIEW"], ["THE SERVER'S VIEW"])
        parts = [header]
        for title, request in (
            ("a page from this server", self.ours),
            ("the rebound page", self.rebound),
        ):
            page, server = request.views()
            parts.append(f"── {title} " + "─" * 30)
            parts.append(_columns(page, server))
        return "\n".join(parts)


def _send(url: str, page: str, method: str, path: str) -> Rebound:
    """Make the request a page at ``page`` makes to ``path`` on its own site, sent to ``url``."""
    # Fetch adds Origin to every request whose method is not GET or HEAD, same-origin ones too
    # ("append a request Origin header"); a same-origin GET carries none.
    origin = None if method in ("GET", "HEAD") else page
    headers = {"Host": urlsplit(page).netloc}
    if origin:
        headers["Origin"] = origin
    body: dict[str, Any] | None = {} if method == "POST" else None
    response = httpx.request(method, url + path, headers=headers, json=body, timeout=10)
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    created = answer.get("connection_id") if response.is_success else None
    return Rebound(
        page,
        method,
        path,
        urlsplit(url).netloc,
        origin,
        response.status_code,
        answer.get("error") if isinstance(answer.get("error"), str) else None,
        created if isinstance(created, str) else None,
    )


def rebinding(
    url: str, *, method: str = "GET", path: str = "/stats", host: str = REBOUND_HOST
) -> Rebinding:
    """``method path`` from a page this server served (``url`` itself) and from a page at
    ``http://{host}:PORT`` after DNS rebinding: both requests go to ``url``'s address; only
    ``Host`` (and for a ``POST``, ``Origin``) differ. A ``POST /poll`` opens a connection when it
    gets through."""
    port = urlsplit(url).port
    return Rebinding(
        _send(url, url, method, path),
        _send(url, f"http://{host}:{port}", method, path),
    )


@dataclass(frozen=True)
class CorsAnswer:
    """What a request with this ``Origin`` got: the status and the CORS headers."""

    origin: str | None
    status: int
    allow_origin: str | None
    vary: str | None


class CorsAnswers(list[CorsAnswer]):
    """The answers, printed as a table."""

    def __repr__(self) -> str:
        lines = [f"{'Origin sent':26} {'status':>6}  {'Access-Control-Allow-Origin':28} Vary"]
        for a in self:
            lines.append(
                f"{a.origin or '(none)':26} {a.status:>6}  {a.allow_origin or '(none)':28} "
                f"{a.vary or '(none)'}"
            )
        return "\n".join(lines)


def cors_answers(
    url: str,
    origins: tuple[str | None, ...] = (None, "http://localhost:8888", "https://evil.example"),
    path: str = "/stats",
) -> CorsAnswers:
    """``GET path`` once per ``Origin`` (``None``: no Origin header, as curl or a same-origin
    ``GET`` sends), with the ``Access-Control-Allow-Origin`` and ``Vary`` each answer carried."""
    answers = CorsAnswers()
    for origin in origins:
        headers = {"Origin": origin} if origin else {}
        response = httpx.get(url + path, headers=headers, timeout=10)
        answers.append(
            CorsAnswer(
                origin,
                response.status_code,
                response.headers.get("access-control-allow-origin"),
                response.headers.get("vary"),
            )
        )
    return answers


# -- a leaked connection id ----------------------------------------------------------------------


@dataclass
class WatchedSocket:
    """A WebSocket client reading in a thread: what it received, and how it ended."""

    name: str
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    closed: str | None = None  # "4000 superseded by a resumed connection", once closed
    ready: threading.Event = field(default_factory=threading.Event)
    _socket: ClientConnection | None = None

    @property
    def connection_id(self) -> str:
        """The connection id the server gave (or confirmed) in its ``connected`` event."""
        return str(self.received[0]["connection_id"]) if self.received else ""

    def wait_for(self, count: int, timeout: float = 5.0) -> WatchedSocket:
        """Wait until ``count`` events (heartbeats aside) have arrived, or it closed."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and self.closed is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def lines(self) -> list[str]:
        """What it saw, one short line per event."""
        out = []
        for event in self.received:
            if event.get("type") == "connected":
                resumed = " (resumed)" if event.get("resumed") else ""
                out.append(f"connected {str(event.get('connection_id'))[:8]}…{resumed}")
            elif event.get("type") == "message":
                out.append(f"seq {event.get('seq')}: {event.get('message')!r}")
            else:
                out.append(str(event.get("type")))
        if self.closed:
            out.append(f"closed: {self.closed}")
        return out

    def close(self) -> None:
        """Close the socket (a no-op once closed)."""
        if self._socket is not None:
            self._socket.close()

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=5) as socket:
                self._socket = socket
                for text in socket:
                    event = json.loads(text)
                    if event.get("type") != "heartbeat":
                        self.received.append(event)
                    self.ready.set()
                self.closed = _close_text(socket)
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            self.closed = f"{rcvd.code} {rcvd.reason}" if rcvd else "no close frame (1006)"
        except Exception as exc:  # refused, reset: shown, not raised in a thread
            self.closed = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()


def _close_text(socket: ClientConnection) -> str:
    return f"{socket.close_code} {socket.close_reason or ''}".strip()


def watch_socket(
    url: str, *, name: str = "client", connection_id: str | None = None, last_seq: int = 0
) -> WatchedSocket:
    """Open ``/ws`` on the server at ``url`` — a new connection, or, with ``connection_id``, a
    resume of that connection from ``last_seq`` — and read it in a thread; returns once the
    ``connected`` event came (or the socket closed)."""
    query = f"connection_id={connection_id}&last_seq={last_seq}" if connection_id else ""
    watched = WatchedSocket(name, endpoint_url(url, "/ws", query, websocket=True))
    threading.Thread(target=watched._run, name=f"watch-{name}", daemon=True).start()
    watched.ready.wait(5)
    return watched


class SideBySide:
    """Two clients' views, in two columns."""

    def __init__(self, left: WatchedSocket, right: WatchedSocket) -> None:
        self.left, self.right = left, right

    def __repr__(self) -> str:
        return _columns(
            [self.left.name.upper(), *self.left.lines()],
            [self.right.name.upper(), *self.right.lines()],
        )


def side_by_side(left: WatchedSocket, right: WatchedSocket) -> SideBySide:
    """What each client has seen so far, in two columns."""
    return SideBySide(left, right)


# -- mixed content -------------------------------------------------------------------------------


INSECURE_HOST = "lab.example"
"""A name that is not loopback, mapped to 127.0.0.1 inside the browser (``--host-resolver-rules``),
so that ``ws://lab.example:PORT`` is not a potentially trustworthy URL (Secure Contexts §3.1)."""

_TRY_WEBSOCKET = """async (url) => {
  let socket;
  try { socket = new WebSocket(url); }
  catch (e) { return "the constructor threw " + e.name + ": " + e.message; }
  return await new Promise(resolve => {
    socket.onopen = () => { resolve("open"); socket.close(); };
    socket.onclose = (e) => resolve("closed " + e.code);
    setTimeout(() => resolve("still connecting"), 3000);
  });
}"""


@dataclass
class MixedContent:
    """``new WebSocket(url)`` tried from a page, each with its outcome; ``browser`` is ``None``
    when no browser could be run here (``note`` says why)."""

    page: str
    secure_context: bool | None
    outcomes: list[tuple[str, str]]
    browser: str | None
    note: str = ""

    def __repr__(self) -> str:
        if self.browser is None:
            return f"Not run: {self.note}"
        lines = [
            f"Chromium {self.browser}, page {self.page} (isSecureContext: {self.secure_context})"
        ]
        lines += [f"new WebSocket({url!r})\n    → {outcome}" for url, outcome in self.outcomes]
        return "\n".join(lines)


def _chromium_args(host: str) -> list[str]:
    args = [
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--host-resolver-rules=MAP {host} 127.0.0.1",
    ]
    return ["--no-sandbox", *args] if hasattr(os, "geteuid") and os.geteuid() == 0 else args


def _in_chromium(page_url: str, urls: list[str]) -> MixedContent:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=_chromium_args(INSECURE_HOST), headless=True
        )
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(page_url)
            secure = bool(page.evaluate("window.isSecureContext"))
            outcomes = [(url, str(page.evaluate(_TRY_WEBSOCKET, url))) for url in urls]
            return MixedContent(page_url, secure, outcomes, browser.version)
        finally:
            browser.close()


def mixed_content() -> MixedContent:
    """Serve this suite's page over https (a server of its own, ``https=True``, on a free port)
    and, from it in a headless Chromium, open a WebSocket to a plain-HTTP server of its own: by a
    name that is not loopback (``ws://`` and ``http://``), by ``127.0.0.1``, and over ``wss://``.
    Needs Playwright and a Chromium (the test extra); without them, says so and runs nothing."""
    secure = start_server(port=0, https=True)
    plain = start_server(
        port=0,
        allowed_hosts=(INSECURE_HOST,),
        allowed_origins=("http://127.0.0.1:*", "https://127.0.0.1:*"),
    )
    urls = [
        f"ws://{INSECURE_HOST}:{plain.port}/ws",
        f"http://{INSECURE_HOST}:{plain.port}/ws",
        f"ws://127.0.0.1:{plain.port}/ws",
        f"wss://127.0.0.1:{secure.port}/ws",
    ]
    try:
        # Playwright's sync API refuses to run on a thread with a running event loop (a kernel's).
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(_in_chromium, f"{secure.url}/", urls).result(timeout=60)
    except Exception as exc:  # no Playwright, no Chromium: say so instead of failing the cell
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return MixedContent(f"{secure.url}/", None, [], None, note)
    finally:
        plain.stop()
        secure.stop()
