"""The async clients against the real server in a thread (and through a cutting proxy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from transport_demo import RunningServer, start_server
from transport_demo.clients import (
    CLIENTS as REGISTERED,
)
from transport_demo.clients import (
    BaseClient,
    ClientError,
    LongPollClient,
    SSEClient,
    WebSocketClient,
)
from transport_demo.lab.proxy import FaultyProxy
from transport_demo.server.protocol import EventType
from transport_demo.server.transports import Carrier, info, is_stream

from .conftest import FAST

pytestmark = pytest.mark.anyio

CLIENTS = list(REGISTERED.values())
STREAM_CLIENTS = [cls for cls in CLIENTS if is_stream(cls.transport)]
# The cutting proxy relays TCP; a QUIC client's cuts are tested in test_webtransport.py.
TCP_CLIENTS = [cls for cls in CLIENTS if info(cls.transport).carrier is Carrier.TCP]
FAST_CLIENT: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}


def make_client(cls: type[BaseClient], url: str, **options: Any) -> BaseClient:
    options = {**FAST_CLIENT, **options}
    if cls is SSEClient:
        options.setdefault("heartbeat_timeout", 3.0)
    return cls(url, **options)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def echo_of(cls: type[BaseClient]) -> str:
    """The type a client's own text comes back as (the transport table's echo type)."""
    return info(cls.transport).echo


def sends_on_its_stream(cls: type[BaseClient]) -> bool:
    """A text sent up the stream itself comes back as ``user_message``, and so does a refusal
    (an ``error`` event on the stream, not an HTTP answer)."""
    return info(cls.transport).echo is EventType.USER_MESSAGE


async def collect(client: BaseClient, kind: str, count: int, timeout: float = 8) -> list[Any]:
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            event = await client.next_event(timeout)
            if event["type"] == kind:
                got.append(event)
    return got


@pytest.fixture
def proxy(server: RunningServer) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(server.port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_connect_send_echo_and_push(server: RunningServer, cls: type[BaseClient]) -> None:
    async with make_client(cls, server.url) as client:
        cid = await client.wait_connected()
        assert cid == client.connection_id and cid in server.hub
        for i in range(5):
            await client.send(f"hello {i}")
        echoes = await collect(client, echo_of(cls), 5)
        assert [e["message"] for e in echoes] == [f"hello {i}" for i in range(5)]
        server.hub.publish(cid, "pushed")
        push = (await collect(client, "message", 1))[0]
        assert push["message"] == "pushed" and push["seq"] == 6
        assert client.last_seq == 6 and client.stats.messages == 6
        assert client.stats.duplicates == 0 and client.stats.gaps == 0


@pytest.mark.parametrize("cls", STREAM_CLIENTS, ids=lambda c: c.transport)
async def test_heartbeats(server: RunningServer, cls: type[BaseClient]) -> None:
    async with make_client(cls, server.url) as client:
        beats = await collect(client, "heartbeat", 3)
        assert [b["count"] for b in beats] == [1, 2, 3]
        assert client.stats.heartbeats >= 3


async def test_long_poll_timeouts(server: RunningServer) -> None:
    async with make_client(LongPollClient, server.url) as client:
        timeouts = await collect(client, "timeout", 2, timeout=10)
        assert {t["reason"] for t in timeouts} == {"hold_expired"}
        assert client.stats.timeouts >= 2


@pytest.mark.parametrize("cls", TCP_CLIENTS, ids=lambda c: c.transport)
async def test_resume_after_cuts_loses_and_doubles_nothing(
    server: RunningServer, proxy: FaultyProxy, cls: type[BaseClient]
) -> None:
    async with make_client(cls, proxy.url) as client:
        cid = await client.wait_connected()
        sent = 0
        for _round in range(4):
            for _ in range(25):
                sent += 1
                server.hub.publish(cid, f"m{sent}")
            await asyncio.sleep(0.03)
            assert proxy.cut() >= 0
        await wait_for(lambda: client.last_seq == sent, timeout=15)
        events = [e for e in drain(client) if e["type"] == "message"]
        assert [e["seq"] for e in events] == list(range(1, sent + 1))
        assert [e["message"] for e in events] == [f"m{i}" for i in range(1, sent + 1)]
        assert client.connection_id == cid
        assert client.stats.gaps == 0
        assert client.stats.reconnects >= 1


def drain(client: BaseClient) -> list[Any]:
    return client.take_unread()


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_backoff_while_down_then_new_connection_on_restart(cls: type[BaseClient]) -> None:
    server = start_server(port=0, **FAST)
    port = server.port
    try:
        async with make_client(cls, server.url) as client:
            first = await client.wait_connected()
            await asyncio.to_thread(server.stop)
            await collect(client, "reconnecting", 2, timeout=10)
            assert client.state == "reconnecting"
            server = await asyncio.to_thread(lambda: start_server(port=port, **FAST))
            await wait_for(lambda: client.connection_id not in (None, first), timeout=15)
            second = await client.wait_connected(timeout=5)
            notes = drain(client)
            assert second != first
            assert any(e["type"] == "new_connection" and e["client"] for e in notes)
            assert any(e["type"] == "reconnected" for e in notes)
            assert client.stats.reconnects >= 2
            await client.send("after the restart")
            assert (await collect(client, echo_of(cls), 1))[0]["message"] == "after the restart"
    finally:
        server.stop()


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_close_is_prompt_and_clean(server: RunningServer, cls: type[BaseClient]) -> None:
    client = make_client(cls, server.url)
    await client.start()
    cid = await client.wait_connected()
    started = time.monotonic()
    await client.close()
    assert time.monotonic() - started < 1.0
    assert client.state == "closed"
    if sends_on_its_stream(cls):  # WebSocket, WebTransport: a clean close with code 1000
        assert getattr(client, "close_code", None) == 1000
    if cls is not LongPollClient:
        await wait_for(lambda: server.hub.state_of(cid) == "disconnected")
    with pytest.raises(ClientError):
        await client.send("after close")


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_client_errors_are_reported(make_server: Any, cls: type[BaseClient]) -> None:
    server = make_server(max_message_bytes=10)
    async with make_client(cls, server.url) as client:
        with pytest.raises(ClientError):
            await client.send("x") if client.connection_id is None else None
        await client.wait_connected()
        if sends_on_its_stream(cls):  # the error comes back on the socket
            await client.send("x" * 11)
            error = (await collect(client, "error", 1))[0]
            assert error["error"] == "message_too_large" and "client" not in error
        else:
            with pytest.raises(ClientError) as refused:
                await client.send("x" * 11)
            assert refused.value.code == "message_too_large" and refused.value.status == 413


async def test_websocket_foreign_origin_is_reported_not_retried(server: RunningServer) -> None:
    async with make_client(WebSocketClient, server.url, origin="http://evil.example") as client:
        error = (await collect(client, "error", 1))[0]
        assert error["client"] is True and error["error"] == "origin_not_allowed"
        assert client.state == "error" and client.stats.reconnects == 0


async def test_long_poll_starts_a_new_connection_when_expired(make_server: Any) -> None:
    server = make_server(poll_timeout=0.3, poll_expiry=0.3)
    async with make_client(LongPollClient, server.url) as client:
        first = await client.wait_connected()
        await client.close()
    await wait_for(lambda: first not in server.hub)
    client = make_client(LongPollClient, server.url)
    client.connection_id = first  # as if it had slept through the expiry
    async with client:
        await collect(client, "new_connection", 1)
        assert await client.wait_connected() != first


async def test_iteration(server: RunningServer) -> None:
    async with make_client(WebSocketClient, server.url) as client:
        cid = await client.wait_connected()
        server.hub.publish(cid, "one")
        seen = []
        async for event in client:
            seen.append(event["type"])
            if event["type"] == "message":
                break
        assert seen[0] == "connected" and seen[-1] == "message"


@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_drop_connection_on_purpose_then_resume(
    server: RunningServer, cls: type[BaseClient]
) -> None:
    async with make_client(cls, server.url) as client:
        cid = await client.wait_connected()
        server.hub.publish(cid, "before")
        await wait_for(lambda: client.last_seq == 1)
        await client.drop_connection()
        server.hub.publish(cid, "during")
        await wait_for(lambda: client.last_seq == 2, timeout=10)
        notes = drain(client)
        assert any(e["type"] == "reconnecting" for e in notes)
        assert [e["message"] for e in notes if e["type"] == "message"] == ["before", "during"]
        assert client.connection_id == cid and client.stats.duplicates == 0
