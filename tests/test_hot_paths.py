"""The hot paths as plain ASGI endpoints (server/hot_paths.py) keep the contract FastAPI's routes
kept: two real servers, one with ``plain_hot_paths`` and one without, are sent the same bytes,
and their answers must be the same bytes — status line, headers in order, body — once what
differs by nature (the date, the port, the connection ids, the events' timestamps) is put in
placeholders."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

import httpx
import pytest
from websockets.sync.client import connect

from transport_demo import RunningServer
from transport_demo.server.app import HOT_PATHS, create_app
from transport_demo.server.hot_paths import HotPaths
from transport_demo.server.settings import Settings

from .waiting import until

Answer = tuple[str, list[tuple[str, str]], str]
# The tests below that interleave steps use a fixed order of calls on both servers; the
# placeholders number the connection ids in the order they first appear in each server's answers.


class Wire:
    """Raw HTTP/1.1 against one server, with its answers put in comparable form."""

    def __init__(self, server: RunningServer) -> None:
        self.port = server.port
        self.ids: dict[str, str] = {}

    def ask(self, request: str, body: bytes = b"", *, until: bytes | None = None) -> Answer:
        """Send ``request`` (``{port}`` filled in) and read one answer; a stream is read until
        ``until`` appears in its decoded body."""
        raw = request.replace("{port}", str(self.port)).replace("\n", "\r\n").encode() + body
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(raw)
            with sock.makefile("rb") as reader:
                return self._read(reader, until)

    def _read(self, reader: BinaryIO, until: bytes | None) -> Answer:
        status = reader.readline().decode().rstrip()
        headers = []
        while (line := reader.readline().decode().rstrip("\r\n")) != "":
            name, _, value = line.partition(":")
            headers.append((name.lower(), value.strip()))
        fields = dict(headers)
        if "content-length" in fields:
            data = reader.read(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            data = _read_chunks(reader, until)
        elif status.startswith("HTTP/1.1 101"):
            data = _read_frame(reader)
        else:
            data = b""
        # A WebSocket frame's header is not UTF-8; the JSON in it is ASCII here.
        return self._normal(status, headers, data.decode("latin-1"))

    def _normal(self, status: str, headers: list[tuple[str, str]], body: str) -> Answer:
        for cid in re.findall(r'"connection_id":"([^"]+)"', body):
            self.ids.setdefault(cid, f"<id{len(self.ids) + 1}>")
        for cid, name in self.ids.items():
            body = body.replace(cid, name)
        body = re.sub(r'"timestamp":"[^"]+"', '"timestamp":"<time>"', body)
        port = str(self.port)
        kept = [(k, v.replace(port, "<port>")) for k, v in headers if k not in ("date", "server")]
        return status, kept, body


def _read_chunks(reader: BinaryIO, until: bytes | None) -> bytes:
    data = b""
    while True:
        size = int(reader.readline().strip(), 16)
        if size == 0:
            return data
        data += reader.read(size)
        reader.readline()
        if until is not None and until in data:
            return data


def _read_frame(reader: BinaryIO) -> bytes:
    """One unmasked server frame (RFC 6455 §5.2): its first byte and its payload."""
    first, second = reader.read(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", reader.read(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", reader.read(8))
    return bytes([first]) + reader.read(size)


@pytest.fixture
def both(make_server: Callable[..., RunningServer]) -> Iterator[tuple[Wire, Wire]]:
    options = {"poll_timeout": 0.3, "max_message_bytes": 1000, "heartbeat_interval": 30.0}
    yield (
        Wire(make_server(plain_hot_paths=True, **options)),
        Wire(make_server(plain_hot_paths=False, **options)),
    )


def same(both: tuple[Wire, Wire], request: str, body: bytes = b"", **kw: bytes) -> Answer:
    plain, framework = (wire.ask(request, body, **kw) for wire in both)
    assert plain == framework
    return plain


def post(path: str, body: bytes, *extra: str, content_type: str = "application/json") -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1:{port}", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"Content-Length: {len(body)}", *extra]
    return "\n".join(lines) + "\n\n"


def get(path: str, *extra: str) -> str:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1:{port}", "Connection: close", *extra]
    return "\n".join(lines) + "\n\n"


def test_the_hot_paths_are_the_plain_endpoints_only_when_asked() -> None:
    assert set(HOT_PATHS) == {("POST", "/poll"), ("GET", "/sse"), ("WEBSOCKET", "/ws")}

    assert isinstance(create_app(Settings()).hot_paths, HotPaths)
    assert create_app(Settings(plain_hot_paths=False)).hot_paths is None
    # FastAPI still documents them either way.
    schema = create_app(Settings()).openapi()
    assert {"/poll", "/sse"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "", "200"),  # curl -X POST /poll: a new connection
        (b"{}", "application/json", "200"),
        (b'{"text": "hi"}', "text/plain", "415"),
        (b'{"text": "hi"}', "", "415"),
        (b"{not json", "application/json", "400"),
        (b'{"connection_id": 5}', "application/json", "422"),
        (b'{"text": "hi"}', "application/json", "422"),  # a text needs a connection
        (b'{"connection_id": "nope"}', "application/vnd.api+json; charset=utf-8", "404"),
        (b"x" * 5000, "application/json", "400"),  # within the body limit
        (b"x" * 8000, "application/json", "413"),  # over it (7,024 bytes here)
    ],
)
def test_poll_answers_alike(
    both: tuple[Wire, Wire], body: bytes, content_type: str, status: str
) -> None:
    answer = same(both, post("/poll", body, content_type=content_type), body)
    assert answer[0].split()[1] == status


def test_a_poll_session_answers_alike(both: tuple[Wire, Wire]) -> None:
    opened = same(both, post("/poll", b"{}"), b"{}")
    assert json.loads(opened[2])["connection_id"] == "<id1>"
    ids = [next(iter(wire.ids)) for wire in both]
    steps: list[dict[str, object]] = [
        {"text": "hello"},  # answered at once, with queued_seq
        {"last_seq": 1},  # acknowledged; nothing new: held, then the timeout
        {"text": "é" * 2000},  # over max_message_bytes
    ]
    for step, body in enumerate(steps):
        answers = []
        for wire, cid in zip(both, ids, strict=True):
            raw = json.dumps({"connection_id": cid, **body}).encode()
            answers.append(wire.ask(post("/poll", raw), raw))
        assert answers[0] == answers[1], step
    # Chunked bodies are read whole on both paths too.
    chunked = "POST /poll HTTP/1.1\nHost: 127.0.0.1:{port}\nConnection: close\n"
    chunked += "Content-Type: application/json\nTransfer-Encoding: chunked\n\n"
    answer = same(both, chunked, b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
    assert json.loads(answer[2])["type"] == "connected"


def test_poll_cors_and_refusals_alike(both: tuple[Wire, Wire]) -> None:
    allowed = "Origin: http://127.0.0.1:{port}"
    answer = same(both, post("/poll", b"{}", allowed), b"{}")
    assert ("access-control-allow-origin", "http://127.0.0.1:<port>") in answer[1]
    assert same(both, post("/poll", b"{}", "Origin: https://evil.example"), b"{}")[0].endswith(
        "403 Forbidden"
    )
    preflight = "OPTIONS /poll HTTP/1.1\nHost: 127.0.0.1:{port}\nConnection: close\n"
    preflight += allowed + "\nAccess-Control-Request-Method: POST\n\n"
    assert same(both, preflight)[0].endswith("200 OK")
    assert same(both, get("/poll"))[0].endswith("405 Method Not Allowed")
    assert same(both, post("/poll/", b"{}"), b"{}")[0].split()[1] == "307"


@pytest.mark.parametrize(
    ("path", "extra", "status"),
    [
        ("/sse", (), "200"),
        ("/sse?connection_id=nope", (), "200"),  # the stream says resume_failed
        ("/sse?connection_id=x&last_seq=abc", (), "422"),
        ("/sse?connection_id=x&last_seq=%C2%B2", (), "422"),  # "²" is a digit to str.isdigit
        ("/sse", ("Last-Event-ID: no-seq",), "422"),
        ("/sse", ("Origin: https://evil.example",), "403"),
        ("/sse", ("Origin: http://localhost:{port}",), "200"),
    ],
)
def test_sse_answers_alike(
    both: tuple[Wire, Wire], path: str, extra: tuple[str, ...], status: str
) -> None:
    answer = same(both, get(path, *extra), until=b"connected")
    assert answer[0].split()[1] == status


def test_an_sse_resume_answers_alike(both: tuple[Wire, Wire]) -> None:
    """A message sent, then a resume by Last-Event-ID and by the query: replayed alike."""
    first = same(both, get("/sse"), until=b'"connected"')
    assert "id1" in first[2]
    for wire in both:
        cid = next(iter(wire.ids))
        raw = json.dumps({"connection_id": cid, "text": "again"}).encode()
        assert wire.ask(post("/sse/message", raw), raw)[0].endswith("200 OK")
    by_header = [
        wire.ask(get("/sse", f"Last-Event-ID: {next(iter(wire.ids))}:0"), until=b"again")
        for wire in both
    ]
    assert by_header[0] == by_header[1]
    assert "again" in by_header[0][2]
    by_query = [
        wire.ask(get(f"/sse?connection_id={next(iter(wire.ids))}&last_seq=1"), until=b"id:")
        for wire in both
    ]
    assert by_query[0] == by_query[1]


WS_HANDSHAKE = (
    "GET {path} HTTP/1.1\nHost: 127.0.0.1:{port}\nUpgrade: websocket\nConnection: Upgrade\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n{extra}\n"
)


@pytest.mark.parametrize(
    ("path", "extra", "status"),
    [
        ("/ws", "", "101"),
        ("/ws", "Origin: http://127.0.0.1:{port}\n", "101"),
        ("/ws", "Origin: https://evil.example\n", "403"),
        ("/ws", "Origin: null\n", "101"),  # a file:// page's: admitted by default
        ("/ws?connection_id=nope", "", "101"),  # then resume_failed on the socket
        ("/ws?connection_id=x&last_seq=-1", "", "422"),
    ],
)
def test_websocket_handshakes_alike(
    both: tuple[Wire, Wire], path: str, extra: str, status: str
) -> None:
    answer = same(both, WS_HANDSHAKE.replace("{path}", path).replace("{extra}", extra))
    assert answer[0].split()[1] == status
    if status == "101":  # the first frame: a text frame (FIN, opcode 1) with `connected`
        assert answer[2][0] == "\x81" and '"type":"connected"' in answer[2]


def test_a_plain_stream_runs_no_task_of_its_own(make_server: Callable[..., RunningServer]) -> None:
    """An SSE stream is its request's task only (the client's leaving is a callback from the
    socket's protocol, not a task waiting on ``receive()``); a WebSocket adds the one task that
    writes. Every stream's task ends with its client."""
    server = make_server(heartbeat_interval=30.0)

    def tasks() -> int:
        return int(httpx.get(server.url + "/stats").json()["asyncio_tasks"])

    before = tasks()
    with contextlib.ExitStack() as streams:
        for _ in range(10):
            sock = streams.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            request = get("/sse").replace("{port}", str(server.port)).replace("\n", "\r\n")
            sock.sendall(request.encode())
            received = b""
            while b"connected" not in received:
                received += sock.recv(4096)
        assert tasks() == before + 10
        for _ in range(10):
            ws = streams.enter_context(
                connect(f"ws://127.0.0.1:{server.port}/ws", compression=None)
            )
            assert "connected" in ws.recv(timeout=5)
        assert tasks() == before + 30
    until(lambda: tasks() == before, timeout=5)
