"""The benchmark's clients: one small probe per wire protocol, the same for every server that
speaks it, so that the client's own cost is equal on both sides of a ratio.

HTTP probes use the minimal clients of :mod:`.http_clients`: HTTP/1.1 keep-alive (plain or over
TLS) or HTTP/2 over TLS, up to ``SETTINGS_MAX_CONCURRENT_STREAMS`` probes sharing one connection as
a browser's tabs share one. WebSocket probes use ``websockets``; the WebTransport probe is
aioquic's (:mod:`.h3_probe`). A probe (:class:`~.probe_base.Probe`) reports

* ``on_text(text, received_ns)`` for every pushed or echoed text (the payload as sent: our JSON
  envelope is unpacked, as a client of ours would);
* every heartbeat (for long polling: a hold that expired): ``beats`` counts them and
  ``lags_since()`` tells how late they arrived;

and counts its HTTP ``requests`` and, for HTTP, the bytes its connections wrote and read above TLS
(``wire_bytes()``: HTTP/1.1 heads and chunking, or HTTP/2 frames with HPACK-coded headers).
``push_to`` is the name the server's ``/bench/push`` knows it by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection, connect

from ..server.protocol import Transport
from ..server.transports import TRANSPORTS, Carrier
from .h3_probe import WebTransportProbe
from .http_clients import HTTPClient, RawH2, RawHTTP, TlsHTTP
from .probe_base import Probe
from .system import client_tls

__all__ = [
    "ON_REDIS",
    "ON_TLS",
    "OURS",
    "OUR_PROBES",
    "PROBES",
    "Probe",
    "RawH2",
    "RawHTTP",
    "WebTransportProbe",
]


class _WSProbe(Probe):
    transport = "websocket"
    path = ""
    tls: ClassVar[bool] = False  # wss:// (RFC 6455's HTTP/1.1 upgrade over TLS)

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await connect(
            f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"
            f"{self.path.format(id=self.push_to)}",
            ping_interval=None,
            max_size=2**20,
            ssl=client_tls("http/1.1") if self.tls else None,
        )
        self.requests += 1
        await self._greet()

    async def _greet(self) -> None:
        raise NotImplementedError

    def links(self) -> set[object]:
        return {self.ws} if self.ws is not None else set()

    async def receive(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                self.frame(str(frame), time.monotonic_ns())

    def frame(self, text: str, at: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)


class OursWS(_WSProbe):
    path = "/ws"

    async def _greet(self) -> None:
        assert self.ws is not None
        self.push_to = json.loads(await self.ws.recv())["connection_id"]

    def frame(self, text: str, at: int) -> None:
        event = json.loads(text)
        if event["type"] == "heartbeat":
            self.beat(at)
        elif "seq" in event:
            self.on_text(event["message"], at)

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"message": text}))


class BareWS(_WSProbe):
    """The bare FastAPI endpoint and the bare websockets server: text frames as they are."""

    path = "/bare/ws?id={id}"

    async def _greet(self) -> None:
        assert self.ws is not None
        await self.ws.recv()  # "open"

    def frame(self, text: str, at: int) -> None:
        if text.startswith("heartbeat "):
            self.beat(at)
        else:
            self.on_text(text, at)

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)


class SocketIOWS(_WSProbe):
    """socket.io over its WebSocket transport (Engine.IO v4 packets: ``2`` ping, ``42`` event)."""

    path = "/socket.io/?EIO=4&transport=websocket"

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self._pongs: set[asyncio.Future[None]] = set()

    async def _greet(self) -> None:
        assert self.ws is not None
        await self.ws.recv()  # 0{"sid": ...}: the Engine.IO handshake
        await self.ws.send("40")
        self.push_to = json.loads(str(await self.ws.recv())[2:])["sid"]

    def frame(self, text: str, at: int) -> None:
        if text == "2":
            self.beat(at)
            assert self.ws is not None
            pong = asyncio.ensure_future(self.ws.send("3"))  # or socket.io drops us
            self._pongs.add(pong)
            pong.add_done_callback(self._pongs.discard)
        elif text.startswith("42"):
            self.on_text(json.loads(text[2:])[1], at)

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send("42" + json.dumps(["echo", text]))


class _SSEProbe(Probe):
    transport = "sse"
    path = ""
    send_path = ""
    http: ClassVar[type[HTTPClient]] = RawHTTP

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self.stream = self.http(port)
        self.sender = self.stream if self.stream.multiplexes else self.http(port)
        self._lines: AsyncIterator[str] | None = None

    def clients(self) -> list[HTTPClient]:
        return [self.stream, self.sender]

    async def open(self) -> None:
        self._lines = self.stream.lines(self.path.format(id=self.push_to))
        self.requests += 1
        await self._greet()

    async def _greet(self) -> None:
        assert self._lines is not None
        async for line in self._lines:
            if line.startswith("data:"):  # the baselines' "open"
                return

    async def receive(self) -> None:
        assert self._lines is not None
        with contextlib.suppress(Exception):
            async for line in self._lines:
                if line.startswith("data:"):
                    self.data(line[5:].removeprefix(" "), time.monotonic_ns())
                elif line.startswith(":") and "ping" in line:
                    self.beat(time.monotonic_ns())

    def data(self, text: str, at: int) -> None:
        if text.startswith("heartbeat "):
            self.beat(at)
        else:
            self.on_text(text, at)

    async def send(self, text: str) -> None:
        self.requests += 1
        await self.sender.request("POST", self.send_path, self._send_body(text))

    def _send_body(self, text: str) -> bytes:
        return json.dumps({"id": self.push_to, "text": text}).encode()

    async def close(self) -> None:
        self.stream.close()
        self.sender.close()


class OursSSE(_SSEProbe):
    path = "/sse"
    send_path = "/sse/message"

    async def _greet(self) -> None:
        assert self._lines is not None
        async for line in self._lines:
            if line.startswith("data:"):
                self.push_to = json.loads(line[5:])["connection_id"]
                return

    def data(self, text: str, at: int) -> None:
        event = json.loads(text)
        if event["type"] == "heartbeat":
            self.beat(at)
        elif "seq" in event:
            self.on_text(event["message"], at)

    def _send_body(self, text: str) -> bytes:
        return json.dumps({"connection_id": self.push_to, "text": text}).encode()


class BareSSE(_SSEProbe):
    path = "/bare/sse?id={id}"
    send_path = "/bare/sse/send"


class StarletteSSE(_SSEProbe):
    path = "/sse?id={id}"
    send_path = "/sse/send"


class _PollProbe(Probe):
    transport = "long-polling"
    http: ClassVar[type[HTTPClient]] = RawHTTP

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self.poller = self.http(port)
        # Over HTTP/2 a send is a second stream beside the held poll; over HTTP/1.1 it needs a
        # second connection (the first is busy with the poll).
        self.sender = self.poller if self.poller.multiplexes else self.http(port)
        self._closed = False

    def clients(self) -> list[HTTPClient]:
        return [self.poller, self.sender]

    async def _post(self, http: HTTPClient, path: str, body: bytes, ctype: str) -> bytes:
        self.requests += 1
        return await http.request("POST", path, body, ctype)

    async def close(self) -> None:
        self._closed = True
        self.poller.close()
        self.sender.close()


class OursLongPoll(_PollProbe):
    """Our long polling, acknowledging with ``last_seq`` on every poll as our clients do."""

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self.last_seq = 0
        self._poll_sent = 0

    async def open(self) -> None:
        answer = json.loads(await self._post(self.poller, "/poll", b"{}", "application/json"))
        self.push_to = answer["connection_id"]

    def _answer(self, answer: dict[str, Any], at: int) -> None:
        if answer["type"] == "timeout":
            if answer.get("reason") == "hold_expired":
                # Due when its hold ended: the server says how long it held this poll (a
                # jittered hold is shorter than the poll timeout).
                hold_ns = int(answer["hold"] * 1e9) if "hold" in answer else self.heartbeat_ns
                self.beat(at, self._poll_sent + hold_ns)
            return
        for event in answer.get("messages", ()):
            if event["seq"] > self.last_seq:
                self.last_seq = event["seq"]
                self.on_text(event["message"], at)

    async def receive(self) -> None:
        with contextlib.suppress(Exception):
            while not self._closed:
                body = {"connection_id": self.push_to, "last_seq": self.last_seq}
                self._poll_sent = time.monotonic_ns()
                answer = await self._post(
                    self.poller, "/poll", json.dumps(body).encode(), "application/json"
                )
                self._answer(json.loads(answer), time.monotonic_ns())

    async def send(self, text: str) -> None:
        # A send answers at once with its echo; it supersedes the held poll, which comes back
        # empty and is sent again by receive().
        body = {"connection_id": self.push_to, "text": text, "last_seq": self.last_seq}
        answer = await self._post(
            self.sender, "/poll", json.dumps(body).encode(), "application/json"
        )
        self._answer(json.loads(answer), time.monotonic_ns())


class BareLongPoll(_PollProbe):
    async def open(self) -> None:
        body = json.dumps({"id": self.push_to, "text": "open"}).encode()
        await self._post(self.sender, "/bare/poll", body, "application/json")

    async def receive(self) -> None:
        body = json.dumps({"id": self.push_to}).encode()
        with contextlib.suppress(Exception):
            while not self._closed:
                sent = time.monotonic_ns()
                texts = json.loads(
                    await self._post(self.poller, "/bare/poll", body, "application/json")
                )
                at = time.monotonic_ns()
                if not texts and at - sent > self.heartbeat_ns // 2:
                    self.beat(at, sent + self.heartbeat_ns)
                for text in texts:
                    self.on_text(text, at)

    async def send(self, text: str) -> None:
        body = json.dumps({"id": self.push_to, "text": text}).encode()
        for echoed in json.loads(
            await self._post(self.sender, "/bare/poll", body, "application/json")
        ):
            self.on_text(echoed, time.monotonic_ns())


class SocketIOPolling(_PollProbe):
    """socket.io over its long-polling transport: GETs carry server packets (``\\x1e``-separated),
    POSTs carry the client's."""

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self.sid = ""

    def _path(self) -> str:
        return f"/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    async def _get(self) -> list[str]:
        self.requests += 1
        return (await self.poller.request("GET", self._path())).decode().split("\x1e")

    async def open(self) -> None:
        self.requests += 1
        opening = await self.poller.request("GET", "/socket.io/?EIO=4&transport=polling")
        self.sid = json.loads(opening.decode()[1:])["sid"]
        await self._post(self.sender, self._path(), b"40", "text/plain;charset=UTF-8")
        for packet in await self._get():
            if packet.startswith("40"):
                self.push_to = json.loads(packet[2:])["sid"]

    async def receive(self) -> None:
        with contextlib.suppress(Exception):
            while not self._closed:
                packets = await self._get()
                at = time.monotonic_ns()
                for packet in packets:
                    if packet == "2":
                        self.beat(at)
                        await self._post(self.sender, self._path(), b"3", "text/plain")
                    elif packet.startswith("42"):
                        self.on_text(json.loads(packet[2:])[1], at)

    async def send(self, text: str) -> None:
        body = ("42" + json.dumps(["echo", text])).encode()
        await self._post(self.sender, self._path(), body, "text/plain;charset=UTF-8")


class TlsSSE(OursSSE):
    """Our SSE over HTTP/1.1 and TLS: two connections, the stream's and the sends'."""

    http = TlsHTTP


class H2SSE(OursSSE):
    """Our SSE over HTTP/2: the stream and the sends on one connection, shared with other
    probes up to the server's stream limit."""

    http = RawH2


class TlsLongPoll(OursLongPoll):
    http = TlsHTTP


class H2LongPoll(OursLongPoll):
    http = RawH2


class TlsWS(OursWS):
    """Our WebSocket over TLS (``wss://``, RFC 6455's upgrade on HTTP/1.1). Over HTTP/2 (RFC
    8441's extended CONNECT) only a browser speaks it here: ``websockets`` does not."""

    tls = True


OUR_PROBES: dict[Transport, type[Probe]] = {
    Transport(probe.transport): probe
    for probe in (OursLongPoll, OursSSE, OursWS, WebTransportProbe)
}
"""Our probe of each transport: the transport table's bench column (tests/test_transport_table.py
holds the two to the same transports)."""


def _ours(
    prefix: str, family: str, carriers: tuple[Carrier, ...] = tuple(Carrier)
) -> dict[str, tuple[str, type[Probe]]]:
    return {
        f"{prefix} {t.value}": (family, OUR_PROBES[t])
        for t, row in TRANSPORTS.items()
        if row.carrier in carriers
    }


# target name -> (server family, probe)
PROBES: dict[str, tuple[str, type[Probe]]] = {
    **_ours("ours", "ours"),
    "fastapi long-polling": ("fastapi", BareLongPoll),
    "fastapi sse": ("fastapi", BareSSE),
    "fastapi websocket": ("fastapi", BareWS),
    "websockets": ("websockets", BareWS),
    "socketio polling": ("socketio", SocketIOPolling),
    "socketio websocket": ("socketio", SocketIOWS),
    "sse-starlette": ("sse-starlette", StarletteSSE),
    # Ours on Redis (``--redis``), one process and two worker processes on one port (``--workers
    # 2``): not in the default run; ask for them with --targets.
    # Worker processes share one TCP socket; a UDP port has one owner, so they serve no
    # WebTransport (as `--workers` runs): no 'redis-2 webtransport'.
    **_ours("redis", "ours-redis"),
    **_ours("redis-2", "ours-redis:2", (Carrier.TCP,)),
    # Ours over TLS (``start_server(https=True)``: hypercorn), HTTP/1.1 and HTTP/2 by ALPN: the
    # HTTP/2 comparison (``--only http2``), not in the default run either.
    "tls long-polling": ("ours-https", TlsLongPoll),
    "tls sse": ("ours-https", TlsSSE),
    "tls websocket": ("ours-https", TlsWS),
    "h2 long-polling": ("ours-https", H2LongPoll),
    "h2 sse": ("ours-https", H2SSE),
}
OURS = tuple(f"ours {t.value}" for t in TRANSPORTS)
"""Our targets in the default run, one per transport of the table."""
ON_REDIS = tuple(name for name, (family, _) in PROBES.items() if family.startswith("ours-redis"))
ON_TLS = tuple(name for name, (family, _) in PROBES.items() if family == "ours-https")
