"""Bad input, generated: over 10,000 HTTP requests, WebSocket frames and WebTransport lines
(malformed JSON, wrong types, deep nesting, invalid UTF-8, control characters, forged and other
connections' ids, wrong methods and content types). Never a 5xx, never an error in the server's
log (the autouse fixture), and a healthy connection alongside keeps receiving its events in
order."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from transport_demo import RunningServer
from transport_demo.clients import WebTransportClient

from .figures import record

# The server's and the healthy client's threads use `random` (WebSocket ping payloads) while
# Hypothesis generates examples; it only warns about that, and it is not the strategies' doing.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
    ),
    pytest.mark.slow,
]

HTTP_EXAMPLES = 3500  # x2 endpoints, plus the methods test
FRAME_EXAMPLES = 3000
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
ALLOWED_CODES = {
    "invalid_json", "invalid_request", "invalid_text", "unknown_connection", "message_too_large",
    "unsupported_media_type", "queue_full", "not_found", "method_not_allowed",
}  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


class Healthy:
    """A WebSocket connection that keeps receiving pushes while the fuzzing goes on."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.ws = connect(f"{server.ws_url}/ws").__enter__()
        self.cid = json.loads(self.ws.recv(5))["connection_id"]
        self.received: list[int] = []
        self.sent = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                event = json.loads(self.ws.recv())
                if event["type"] == "message":
                    self.received.append(event["seq"])
        except ConnectionClosed:
            pass

    def push(self) -> None:
        self.server.hub.publish(self.cid, f"still here {self.sent}")
        self.sent += 1

    def close(self) -> None:
        self.ws.close()
        self.thread.join(5)


@pytest.fixture
def ids(server: RunningServer) -> Iterator[dict[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        lp = http.post("/poll").json()["connection_id"]
        healthy = Healthy(server)
        yield {"http": http, "lp": lp, "healthy": healthy, "count": 0}
        for _ in range(200):
            if len(healthy.received) == healthy.sent:
                break
            threading.Event().wait(0.05)
        assert healthy.received == list(range(1, healthy.sent + 1))
        healthy.close()


def body_strategy(ids: dict[str, Any]) -> st.SearchStrategy[tuple[bytes, str | None]]:
    cid = st.sampled_from(
        [ids["lp"], ids["healthy"].cid, str(uuid.uuid4()), "", "x" * 100, ids["lp"][:8]]
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "connection_id": cid | json_values,
            "text": st.text(max_size=50) | json_values,
            "last_seq": st.integers(-5, 10**20) | json_values,
        },
    )
    as_json = (fields | json_values).map(lambda v: json.dumps(v).encode())
    raw = st.binary(max_size=200)  # invalid UTF-8, control characters, nothing at all
    nested = st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
    content_type = st.sampled_from(
        [None, "application/json", "text/plain", "application/x-www-form-urlencoded",
         "application/json; charset=latin-1", "multipart/form-data; boundary=x"]
    )  # fmt: skip
    return st.tuples(as_json | raw | nested, content_type)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["type"] == "error" and body["error"] in ALLOWED_CODES, body


@pytest.mark.parametrize("path", ["/poll", "/sse/message"])
def test_generated_bodies_get_clear_4xx_never_5xx(
    server: RunningServer, ids: dict[str, Any], path: str
) -> None:
    http: httpx.Client = ids["http"]

    @settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=SUPPRESS)
    @given(request=body_strategy(ids))
    def fuzz(request: tuple[bytes, str | None]) -> None:
        body, content_type = request
        headers = {"content-type": content_type} if content_type else {}
        # A valid poll is held for the poll timeout (1 s) and then answered: a request still
        # unanswered after 5 s is a hang, and fails the test (httpx raises ReadTimeout).
        response = http.post(path, content=body, headers=headers, timeout=5)
        check_answer(response)
        ids["count"] += 1
        if ids["count"] % 50 == 0:
            ids["healthy"].push()

    fuzz()
    record(f"fuzz.http{path.replace('/', '_')}", requests=ids["count"], server_errors=0)


def test_wrong_methods_and_paths(server: RunningServer, ids: dict[str, Any]) -> None:
    http: httpx.Client = ids["http"]
    count = 0
    for method in ["GET", "PUT", "DELETE", "PATCH"]:
        for path in ["/poll", "/sse/message", "/stats", "/nope", "/ws"]:
            response = http.request(method, path)
            if method == "GET" and path in ("/stats",):
                assert response.status_code == 200
                continue
            check_answer(response)
            count += 1
    assert count > 10


def test_generated_frames_get_errors_and_the_socket_survives(
    server: RunningServer, ids: dict[str, Any]
) -> None:
    state: dict[str, Any] = {"ws": None, "frames": 0, "closed_1009": 0}

    def socket() -> ClientConnection:
        if state["ws"] is None:
            state["ws"] = connect(f"{server.ws_url}/ws", max_size=None).__enter__()
            state["ws"].recv(5)  # connected
        return state["ws"]  # type: ignore[no-any-return]

    frames = (
        st.text(max_size=300)
        | json_values.map(json.dumps)
        | st.dictionaries(st.sampled_from(["message", "text", "m"]), json_values).map(json.dumps)
        | st.binary(max_size=300)
        | st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
    )

    @settings(max_examples=FRAME_EXAMPLES, deadline=None, suppress_health_check=SUPPRESS)
    @given(frame=frames)
    def fuzz(frame: str | bytes) -> None:
        ws = socket()
        ws.send(frame)
        state["frames"] += 1
        while True:  # every frame is answered: an echo or an error, never silence or a crash
            event = json.loads(ws.recv(5))
            if event["type"] in ("user_message", "error"):
                break
        if event["type"] == "error":
            assert event["error"] in ALLOWED_CODES | {"binary_not_supported"}
        if state["frames"] % 50 == 0:
            ids["healthy"].push()

    fuzz()
    state["ws"].close()
    record("fuzz.websocket_frames", frames=state["frames"], closes=0, server_errors=0)


LINE_EXAMPLES = 1000


def test_generated_lines_get_errors_and_the_session_survives(
    server: RunningServer, ids: dict[str, Any]
) -> None:
    """WebTransport's lines, generated like the WebSocket's frames: each non-blank line is answered
    with an echo or an error on the same session, which stays open."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    client = WebTransportClient(server.url, backoff_initial=0.05)
    run(client.start())
    run(client.wait_connected())
    sessions = client.stats.requests

    async def exchange(data: bytes) -> dict[str, Any]:
        protocol = client._protocol
        assert protocol is not None and protocol.stream_id is not None
        protocol._quic.send_stream_data(protocol.stream_id, data)
        protocol.transmit()
        while True:
            event = await client.next_event(5)
            if event["type"] in ("user_message", "error"):
                return event

    lines = (
        st.text(max_size=300).map(str.encode)
        | json_values.map(json.dumps).map(str.encode)
        | st.dictionaries(st.sampled_from(["message", "text"]), json_values)
        .map(json.dumps)
        .map(str.encode)
        | st.binary(max_size=300)
        | st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
    )
    count = 0

    @settings(max_examples=LINE_EXAMPLES, deadline=None, suppress_health_check=SUPPRESS)
    @given(line=lines)
    def fuzz(line: bytes) -> None:
        nonlocal count
        line = line.replace(b"\n", b" ")
        assume(line.strip())  # a blank line is skipped by the server: nothing to answer
        event = run(exchange(line + b"\n"))
        if event["type"] == "error":
            assert event["error"] in ALLOWED_CODES and "client" not in event
        count += 1
        if count % 50 == 0:
            ids["healthy"].push()

    try:
        fuzz()
        assert client.stats.requests == sessions and client.state == "open"  # never dropped
    finally:
        run(client.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    record("fuzz.webtransport_lines", lines=count, closes=0, server_errors=0)
