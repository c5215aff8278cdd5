"""The protocols on the wire, for the notebooks: raw requests, raw bytes, handshakes and frames.

Everything here is synchronous (no event loop to manage in a cell) and returns small records whose
``repr`` is what a class should look at: what was sent, what came back, and when.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

__all__ = [
    "Exchange",
    "Frame",
    "poll",
    "sse_bytes",
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


def poll(url: str, body: dict[str, Any] | None = None, *, timeout: float = 120) -> Exchange:
    """``POST /poll`` with ``body``; the answer, and how long the server held the request."""
    started = time.monotonic()
    response = httpx.post(f"{url}/poll", json=body or {}, timeout=timeout)
    return Exchange(
        "POST",
        "/poll",
        body or {},
        response.status_code,
        response.json(),
        time.monotonic() - started,
    )


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
) -> RawStream:
    """Read ``GET /sse`` for ``seconds``; keep the raw ``text/event-stream`` bytes as they came."""
    started = time.monotonic()
    timeout = httpx.Timeout(5.0, read=seconds + 30)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", f"{url}/sse", headers=headers, params=params) as response,
    ):
        stream = RawStream(response.status_code, dict(response.headers))
        for text in response.iter_text():
            stream.chunks.append(Chunk(round(time.monotonic() - started, 3), text))
            if time.monotonic() - started > seconds:
                break
    return stream


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
    ws_url = "ws" + url[4:] + "/ws" + (f"?{query}" if query else "")
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
