"""The protocols on the wire, for the notebooks: raw requests, raw bytes, handshakes and frames.

Everything here is synchronous (no event loop to manage in a cell) and returns small records whose
``repr`` is what a class should look at: what was sent, what came back, and when.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ..server.urls import endpoint_url

__all__ = [
    "Exchange",
    "Frame",
    "RawHTTP",
    "held_poll",
    "http_bytes",
    "poll",
    "request_bytes",
    "response_length",
    "sse_bytes",
    "stop_reading_after",
    "websocket_frames",
    "websocket_handshake",
]


@dataclass
class Exchange:
    """One HTTP request and its answer, timed."""

    method: str
    path: str
    sent: Any
    status: int
    answer: Any
    seconds: float

    def __repr__(self) -> str:
        sent = "" if self.sent is None else " " + json.dumps(self.sent)
        answer = json.dumps(self.answer, indent=1) if isinstance(self.answer, dict) else self.answer
        return (
            f"{self.method} {self.path}{sent}\n→ {self.status} after {self.seconds:.2f} s\n{answer}"
        )


def poll(
    url: str, body: dict[str, Any] | None = None, *, path: str = "/poll", timeout: float = 120
) -> Exchange:
    """``POST /poll`` (or ``path``) with ``body``; the answer, and how long the server held the
    request."""
    started = time.monotonic()
    response = httpx.post(f"{url}{path}", json=body or {}, timeout=timeout)
    return Exchange(
        "POST",
        path,
        body or {},
        response.status_code,
        response.json(),
        time.monotonic() - started,
    )


def held_poll(url: str, body: dict[str, Any], *, timeout: float = 120) -> Future[Exchange]:
    """Start :func:`poll` in a background thread and return at once; ``.result()`` waits for its
    answer. For watching a held poll end while the notebook does something else."""
    future: Future[Exchange] = Future()

    def run() -> None:
        try:
            future.set_result(poll(url, body, timeout=timeout))
        except BaseException as exc:  # handed to whoever calls .result()
            future.set_exception(exc)

    threading.Thread(target=run, name="held-poll", daemon=True).start()
    return future


def wait_held(hub: Any, connection_id: str, timeout: float = 5.0) -> bool:
    """Wait until the server holds a poll for ``connection_id`` (its state is ``live``): for a
    cell that must act while a poll is held, whatever the machine's load. ``False`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while hub.state_of(connection_id) != "live":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- HTTP as bytes ------------------------------------------------------------------------------


def response_length(data: bytes) -> int | None:
    """How many bytes of ``data`` make up the first complete HTTP/1.1 response, or ``None`` while
    it is incomplete: the head, then a ``Content-Length`` body or a chunked body up to its last
    chunk (RFC 9112 §6.3). A response framed by the connection's close is never complete here."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head_end = end + 4
    status = data[: data.find(b"\r\n")].split(b" ")
    if len(status) > 1 and status[1] in (b"204", b"304"):
        return head_end  # never a body (RFC 9112 §6.3, rule 1)
    fields = {}
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        at = head_end
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(data[at:line_end].split(b";")[0], 16)
            if size == 0:
                trailer_end = data.find(b"\r\n\r\n", line_end)
                if data[line_end : line_end + 4] == b"\r\n\r\n":
                    return line_end + 4
                return None if trailer_end < 0 else trailer_end + 4
            at = line_end + 2 + size + 2
            if len(data) < at:
                return None
    length = int(fields.get(b"content-length", b"0"))
    return head_end + length if len(data) >= head_end + length else None


def request_bytes(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None,
) -> bytes:
    """The bytes of a minimal HTTP/1.1 request (a JSON ``body`` adds its two header lines)."""
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    payload = b""
    if body is not None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class RawHTTP:
    """One HTTP/1.1 request and its response, byte for byte as they crossed the socket.

    The counts are HTTP's own bytes: TCP/IP headers (40+ bytes a packet) and, on ``https``, TLS
    records come on top and are not seen from here.
    """

    request: bytes
    response: bytes
    seconds: float

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        """The response body (de-chunked if it was chunked)."""
        head, _, body = self.response.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in head.lower():
            return body
        out, at = b"", 0
        while (line_end := body.find(b"\r\n", at)) >= 0:
            size = int(body[at:line_end].split(b";")[0], 16)
            if size == 0:
                break
            out += body[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
        return out

    def json(self) -> Any:
        """The response body as JSON."""
        return json.loads(self.body)

    @staticmethod
    def _sizes(data: bytes) -> str:
        head, _, body = data.partition(b"\r\n\r\n")
        return f"{len(data)} bytes: head {len(head) + 4} + body {len(body)}"

    def __repr__(self) -> str:
        return (
            f"→ sent {self._sizes(self.request)}\n"
            + self.request.decode("utf-8", "replace").replace("\r\n", "\n").rstrip()
            + f"\n\n← received {self._sizes(self.response)}, after {self.seconds:.2f} s\n"
            + self.response.decode("utf-8", "replace").replace("\r\n", "\n").rstrip()
        )


def http_bytes(
    url: str,
    method: str = "POST",
    path: str = "/poll",
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> RawHTTP:
    """Send one request over a plain socket, exactly the bytes a minimal HTTP/1.1 client sends
    (a JSON ``body`` adds ``Content-Type`` and ``Content-Length``), and keep every byte of the
    response. A browser sends the same request with many more header lines (``User-Agent``,
    ``Accept-*``, ``Origin``, ``Referer``, ``Sec-Fetch-*``, cookies)."""
    parts = urlsplit(url)
    request = request_bytes(url, method, path, body, headers)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while (length := response_length(received)) is None:
            data = sock.recv(65536)
            if not data:
                length = len(received)
                break
            received += data
    return RawHTTP(request, received[:length], time.monotonic() - started)


@dataclass
class Chunk:
    """Bytes as they arrived, ``at`` seconds after the request."""

    at: float
    text: str


@dataclass
class RawStream:
    status: int
    headers: dict[str, str]
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)

    def __repr__(self) -> str:
        head = f"→ {self.status}\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        body = "\n".join(
            f"[{chunk.at:5.2f} s] " + chunk.text.replace("\n", "\n          ").rstrip()
            for chunk in self.chunks
        )
        return head + "\n\n" + body


def sse_bytes(
    url: str,
    *,
    seconds: float = 2.0,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    path: str = "/sse",
    json: dict[str, Any] | None = None,
) -> RawStream:
    """Read ``GET /sse`` (or ``path``) for ``seconds``, or until the stream ends; keep the raw
    ``text/event-stream`` text as it came, chunk by chunk. With ``json``, the request is a
    ``POST`` with that body (as streaming APIs are called)."""
    started = time.monotonic()
    timeout = httpx.Timeout(5.0, read=seconds + 30)
    method = "GET" if json is None else "POST"
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream(
            method, f"{url}{path}", headers=headers, params=params, json=json
        ) as response,
    ):
        stream = RawStream(response.status_code, dict(response.headers))
        with stop_reading_after(response, seconds - (time.monotonic() - started)):
            for text in response.iter_text():
                stream.chunks.append(Chunk(round(time.monotonic() - started, 3), text))
    return stream


@contextlib.contextmanager
def stop_reading_after(response: httpx.Response, seconds: float) -> Iterator[None]:
    """Stop reading a streamed response after ``seconds``, even while it is quiet: a timer shuts
    the socket down, which wakes a blocked read (closing it from another thread would not). The
    read's error then ends the ``with`` block quietly; any other error passes."""
    sock = response.extensions["network_stream"].get_extra_info("socket")

    def shut() -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    deadline = time.monotonic() + seconds
    timer = threading.Timer(max(0.0, seconds), shut)
    timer.start()
    try:
        yield
    except (httpx.TransportError, httpx.StreamError):
        if time.monotonic() < deadline:
            raise
    finally:
        timer.cancel()


def websocket_handshake(url: str, *, origin: str | None = None, path: str = "/ws") -> str:
    """The HTTP Upgrade request and the server's answer, as the bytes on the wire show them."""
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    request = "\r\n".join(lines) + "\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return "→ sent\n" + request.strip() + "\n\n← received\n" + head


@dataclass
class Frame:
    at: float
    direction: str  # "→" client to server, "←" server to client, "×" close
    data: str

    def __repr__(self) -> str:
        return f"[{self.at:5.2f} s] {self.direction} {self.data}"


def websocket_frames(
    url: str,
    send: list[str | bytes] = (),  # type: ignore[assignment]
    *,
    seconds: float = 1.5,
    query: str = "",
    origin: str | None = None,
) -> list[Frame]:
    """Open ``/ws``, send ``send`` one by one, record every frame for ``seconds``, then close.

    The last record is the close: who closed, with which code.
    """
    ws_url = endpoint_url(url, "/ws", query, websocket=True)
    frames: list[Frame] = []
    started = time.monotonic()

    def now() -> float:
        return round(time.monotonic() - started, 3)

    with connect(ws_url, origin=origin, max_size=None) as ws:  # type: ignore[arg-type]
        for item in send:
            ws.send(item)
            shown = item if isinstance(item, str) else f"<{len(item)} binary bytes>"
            frames.append(Frame(now(), "→", shown[:200]))
        try:
            while (left := seconds - (time.monotonic() - started)) > 0:
                try:
                    frames.append(Frame(now(), "←", str(ws.recv(timeout=left))[:300]))
                except TimeoutError:
                    break
            ws.close(1000)
            frames.append(Frame(now(), "×", "client closed with 1000 (normal closure)"))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            frames.append(Frame(now(), "×", f"server closed with {code} {reason}".strip()))
    return frames
