"""WebTransport against a real server: aioquic's client over UDP on 127.0.0.1, the session's
lines, resume, the close codes, the limits, origins, shutdown, and the server without it.

The shared transport tests (test_clients.py, test_faults.py, test_redis.py, ...) run the
``WebTransportClient`` too; here is what is WebTransport's own."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.waiting import until_async
from transport_demo import RunningServer
from transport_demo.clients import WebTransportClient
from transport_demo.lab.local_redis import start_redis
from transport_demo.server.protocol import CloseCode, Transport
from transport_demo.server.wt_framing import encode_line

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., RunningServer]
FAST_CLIENT: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}


def client_for(server: RunningServer, **options: Any) -> WebTransportClient:
    return WebTransportClient(server.url, **{**FAST_CLIENT, **options})


async def next_of(client: WebTransportClient, kind: str, timeout: float = 8) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event(timeout)
            if event["type"] == kind:
                return event


def write_raw(client: WebTransportClient, data: bytes) -> None:
    """Bytes on the session's stream as they are, bypassing ``send``'s framing."""
    protocol = client._protocol
    assert protocol is not None and protocol.stream_id is not None
    protocol._quic.send_stream_data(protocol.stream_id, data)
    protocol.transmit()


async def test_webtransport_endpoint_names_the_udp_port_and_the_certificate(
    server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = (await http.get("/webtransport")).json()
    assert answer["url"] == f"https://127.0.0.1:{server.port}/wt"  # the HTTP port's number, UDP
    service = server.app.state.webtransport
    assert service.endpoint.port == server.port
    certificate = x509.load_pem_x509_certificate(service.certificate.cert_file.read_bytes())
    der = certificate.public_bytes(Encoding.DER)
    assert answer["cert_sha256"] == hashlib.sha256(der).hexdigest()
    # what Chromium's serverCertificateHashes asks: ECDSA P-256, under 14 days in all
    assert certificate.signature_algorithm_oid._name == "ecdsa-with-SHA256"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.total_seconds() < 14 * 86400


def kernel_limit(name: str) -> int:
    with open(f"/proc/sys/net/core/{name}") as f:
        return int(f.read())


async def test_the_udp_socket_gets_the_receive_buffer_asked_or_the_kernels_cap(
    make_server: MakeServer,
) -> None:
    """SO_RCVBUF as asked, capped at net.core.rmem_max (Linux reports twice the bytes granted,
    socket(7)); None keeps the kernel's default. Read from the socket itself, not the setting."""
    cap = kernel_limit("rmem_max")
    cases: list[tuple[int | None, int]] = [(4 * 1024 * 1024, 2 * min(4 * 1024 * 1024, cap))]
    cases += [(300_000, 2 * min(300_000, cap)), (64 * 1024 * 1024, 2 * cap)]
    cases += [(None, kernel_limit("rmem_default"))]
    for asked, expected in cases:
        # the first case is the default setting, not passed
        options = {} if asked == 4 * 1024 * 1024 else {"udp_receive_buffer": asked}
        server = make_server(**options)
        endpoint = server.app.state.webtransport.endpoint
        sock = endpoint._server._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == expected, asked
        assert endpoint.receive_buffer == expected  # what the server says it got
        server.stop()


async def test_with_https_the_session_uses_the_served_certificate(make_server: MakeServer) -> None:
    server = make_server(https=True)
    assert server.certificate is not None
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context()) as http:
        answer = (await http.get("/webtransport")).json()
    assert answer["cert_sha256"] == server.certificate.sha256.hex()
    assert answer["url"] == f"https://127.0.0.1:{server.port}/wt"


async def test_session_lines_connected_heartbeats_echo_push_broadcast_and_stats(
    server: RunningServer,
) -> None:
    async with client_for(server) as client:
        connected = await next_of(client, "connected")
        cid = connected["connection_id"]
        assert connected["transport"] == "webtransport" and connected["resumed"] is False
        assert client.http_version == "HTTP/3"
        beats = [await next_of(client, "heartbeat") for _ in range(2)]
        assert [b["count"] for b in beats] == [1, 2] and beats[0]["message"] == "Message 1"
        await client.send("hello, QUIC")
        echo = await next_of(client, "user_message")
        assert (echo["seq"], echo["message"]) == (1, "hello, QUIC")
        assert server.hub.publish(cid, "pushed") == 2
        assert server.hub.broadcast("to all") == 1
        pushed = [await next_of(client, "message") for _ in range(2)]
        assert [(e["seq"], e["message"]) for e in pushed] == [(2, "pushed"), (3, "to all")]
        stats = server.hub.stats()
        assert stats["connections"]["webtransport"] == 1 and stats["states"]["live"] == 1
        assert client.stats.gaps == 0 and client.stats.duplicates == 0


async def test_cuts_from_both_sides_resume_with_nothing_lost_or_doubled(
    server: RunningServer,
) -> None:
    async with client_for(server) as client:
        cid = await client.wait_connected()
        sent = 0
        for round_ in range(6):
            for _ in range(10):
                sent += 1
                server.hub.publish(cid, f"m{sent}")
            reconnects = client.stats.reconnects
            if round_ % 2:
                await client.drop_connection()  # the client's QUIC connection goes
            else:
                assert await asyncio.to_thread(server.hub.disconnect, cid)  # the server cuts
            await until_async(
                lambda: client.stats.reconnects > reconnects and client.state == "open",  # noqa: B023
                10,
                "the session back",
            )
        await until_async(lambda: client.last_seq == sent, 10, "every message")
        messages = [e for e in client.take_unread() if e["type"] == "message"]
        assert [e["seq"] for e in messages] == list(range(1, sent + 1))
        assert client.connection_id == cid and client.stats.reconnects >= 6
        assert client.stats.gaps == 0 and client.stats.duplicates == 0


async def test_a_cut_closes_the_session_with_1012_and_a_resumed_one_supersedes_with_4000(
    server: RunningServer,
) -> None:
    async with client_for(server) as first:
        cid = await first.wait_connected()
        assert await asyncio.to_thread(server.hub.disconnect_all, Transport.WEBTRANSPORT) == 1
        note = await next_of(first, "reconnecting")
        assert "(1012)" in note["detail"]
        await next_of(first, "reconnected")
        second = client_for(server)
        second.connection_id, second.last_seq = cid, first.last_seq
        async with second:
            await second.wait_connected()
            closed = await next_of(first, "closed")  # final: it must not take the session back
            assert closed["code"] == CloseCode.SUPERSEDED and first.state == "closed"
            assert second.connection_id == cid


async def test_bad_lines_get_errors_and_an_endless_line_closes_with_1009(
    make_server: MakeServer,
) -> None:
    server = make_server(max_message_bytes=100)
    async with client_for(server) as client:
        await client.wait_connected()
        write_raw(client, b'not json\n\n{"text": "wrong field"}\n')
        errors = [await next_of(client, "error") for _ in range(2)]
        assert [e["error"] for e in errors] == ["invalid_json", "invalid_request"]
        await client.send("x" * 101)
        assert (await next_of(client, "error"))["error"] == "message_too_large"
        write_raw(client, encode_line('{"message": "a line in two ')[:-1])
        write_raw(client, b'reads"}\n')
        assert (await next_of(client, "user_message"))["message"] == "a line in two reads"
        write_raw(client, b"y" * (server.settings.max_envelope_bytes + 1))  # never ends
        given_up = await next_of(client, "error")
        assert given_up["client"] is True and given_up["error"] == "close_1009"
        assert client.state == "error" and client.close_code == CloseCode.MESSAGE_TOO_BIG


async def test_a_client_that_stops_reading_fills_its_queue_not_the_servers_memory(
    make_server: MakeServer,
) -> None:
    """Backpressure: once ~1 MiB written on the stream is unacknowledged, the server stops
    writing, and further pushes wait in the connection's bounded queue until it refuses them."""
    from transport_demo.server.errors import QueueFull
    from transport_demo.server.h3_endpoint import SEND_HIGH_WATER

    server = make_server(max_queue=50, resume_grace=5)
    async with client_for(server) as client:
        cid = await client.wait_connected()
        protocol = client._protocol
        assert protocol is not None
        # The client goes deaf: what reaches it is never read, so never acknowledged.
        protocol.datagram_received = lambda data, addr: None  # type: ignore[method-assign]
        refused_at = None
        for i in range(3000):  # 3 MiB of pushes
            try:
                server.hub.publish(cid, f"{i:04d}" + "x" * 1020)
            except QueueFull:
                refused_at = i
                break
            if i % 10 == 0:  # fewer at once than the queue holds: the server's loop keeps up
                await asyncio.sleep(0.005)
        assert refused_at is not None, "every push was taken: nothing held the writer back"
        (session,) = [
            s
            for p in server.app.state.webtransport.endpoint.protocols
            for s in p._sessions.values()
        ]
        assert session.unacknowledged() <= SEND_HIGH_WATER + 64 * 1024


async def test_rate_and_address_limits_apply_to_sessions(make_server: MakeServer) -> None:
    server = make_server(max_messages_per_second=1, message_burst=2, max_connections_per_address=1)
    async with client_for(server) as client:
        await client.wait_connected()
        for i in range(3):
            await client.send(f"t{i}")
        assert (await next_of(client, "error"))["error"] == "rate_limited"
        async with client_for(server) as second:  # a second connection from 127.0.0.1
            refused = await next_of(second, "error")
            assert refused["error"] == "too_many_connections_from_address"
            assert second.state == "error"


async def test_a_foreign_origin_is_refused_and_an_allowed_one_admitted(
    server: RunningServer,
) -> None:
    async with client_for(server, origin="http://evil.example") as client:
        refused = await next_of(client, "error")
        assert refused["error"] == "origin_not_allowed" and client.state == "error"
        assert client.stats.reconnects == 0
    async with client_for(server, origin=f"http://127.0.0.1:{server.port}") as client:
        await client.wait_connected()


async def test_a_wrong_certificate_hash_is_refused_before_anything_is_sent(
    server: RunningServer,
) -> None:
    class Impostor(WebTransportClient):
        async def _where(self) -> tuple[str, bytes]:
            url, _announced = await super()._where()
            return url, bytes(32)

    async with Impostor(server.url, **FAST_CLIENT) as client:
        note = await next_of(client, "reconnecting")
        assert "certificate_mismatch" in note["detail"]
        assert client.connection_id is None
    assert server.hub.stats()["connections"]["webtransport"] == 0


async def test_stop_closes_sessions_within_two_seconds(make_server: MakeServer) -> None:
    server = make_server(resume_grace=5)
    clients = [client_for(server) for _ in range(3)]
    for client in clients:
        await client.start()
    try:
        for client in clients:
            await client.wait_connected()
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - started < 2.0
        for client in clients:
            note = await next_of(client, "reconnecting", timeout=3)
            assert "(1001)" in note["detail"]  # going away: come back later
    finally:
        for client in clients:
            await client.close()


async def test_without_webtransport_the_endpoint_is_404_and_the_client_gives_up(
    make_server: MakeServer,
) -> None:
    server = make_server(webtransport=False)
    assert server.app.state.webtransport is None
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/webtransport")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    async with client_for(server) as client:
        assert (await next_of(client, "error"))["error"] == "not_found"
        assert client.state == "error"


async def test_a_busy_udp_port_is_a_warning_and_the_rest_is_served(
    make_server: MakeServer,
) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        port = udp.getsockname()[1]
        try:
            server = make_server(port=port)
        except OSError:
            pytest.skip(f"TCP port {port} is taken too (another process)")
        lines = server.log_lines()
        assert any("WARNING" in line and "WebTransport is off" in line for line in lines)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/webtransport")).status_code == 404
            assert (await http.post("/poll")).status_code == 200
    finally:
        udp.close()


async def test_webtransport_on_redis() -> None:
    """The same session over the Redis store: echo, push from another process's hub, resume."""
    from transport_demo import start_server

    redis_server = start_redis()
    options = {"redis_url": redis_server.url, "heartbeat_interval": 0.2, "resume_grace": 5}
    server = start_server(port=0, **options)
    other = start_server(port=0, **options)
    try:
        async with client_for(server) as client:
            cid = await client.wait_connected()
            await client.send("over redis")
            assert (await next_of(client, "user_message"))["seq"] == 1
            await asyncio.to_thread(other.hub.publish, cid, "from the other process")
            assert (await next_of(client, "message"))["seq"] == 2
            await client.drop_connection()
            await asyncio.to_thread(other.hub.publish, cid, "while away")
            await until_async(lambda: client.last_seq == 3, 10, "the resumed push")
            assert client.connection_id == cid and client.stats.gaps == 0
            assert json.dumps(client.stats.as_dict())
    finally:
        server.stop()
        other.stop()
        redis_server.close()


async def test_the_command_line_serves_it_and_no_webtransport_turns_it_off() -> None:
    from tests.test_launcher import free_port, run_cli

    async def where(port: int) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    return await http.get(f"http://127.0.0.1:{port}/webtransport")
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
        raise AssertionError(f"nothing answered on port {port}")

    port = free_port()
    process = run_cli("--port", str(port), "--heartbeat-interval", "0.2")
    try:
        answer = (await where(port)).json()
        assert answer["url"] == f"https://127.0.0.1:{port}/wt"
        async with WebTransportClient(f"http://127.0.0.1:{port}", **FAST_CLIENT) as client:
            assert (await next_of(client, "heartbeat"))["count"] == 1
    finally:
        process.terminate()
        await asyncio.to_thread(process.communicate, timeout=20)
    port = free_port()
    process = run_cli("--port", str(port), "--no-webtransport")
    try:
        assert (await where(port)).status_code == 404
    finally:
        process.terminate()
        await asyncio.to_thread(process.communicate, timeout=20)


async def test_a_client_that_writes_faster_than_the_server_reads_is_closed_with_1008() -> None:
    """What the client writes and the handler has not read is bounded: QUIC's flow control does
    not bound it (aioquic raises its windows as data arrives), so past RECEIVE_HIGH_WATER the
    session stops taking data and its handler closes it with 1008."""
    from typing import cast

    from transport_demo.server import h3_endpoint, webtransport
    from transport_demo.server.delivery import AttachedStream

    session = h3_endpoint.WebTransportSession(
        cast(Any, None), cast(Any, None), session_id=0, headers={}, address="127.0.0.1"
    )
    session.stream_id = 3
    chunk = b"x" * 1200  # about one QUIC packet's data
    while not session.overflowed:
        session._stream_data(3, chunk, ended=False)  # as aioquic hands the stream's data over
    unread = session.incoming.qsize() - 1  # the last item is the None that wakes the handler
    assert unread * len(chunk) <= h3_endpoint.RECEIVE_HIGH_WATER
    session._stream_data(3, chunk, ended=False)  # after the bound: not queued
    assert session.incoming.qsize() == unread + 1
    for _ in range(unread):
        assert await session.receive() == chunk
    assert session._unread == 0
    # The handler reads lines until the None, then answers the overflow with 1008.
    no_stream = cast(AttachedStream, None)  # no complete line arrives: the stream is not used
    closed = await webtransport._receive_lines(session, no_stream, max_line=1 << 22)
    assert closed is not None and closed[0] == CloseCode.POLICY_VIOLATION and "faster" in closed[1]


async def test_a_sessions_inbox_keeps_order_wakes_its_reader_and_stays_small() -> None:
    """The session's inbox (asyncio.Queue's put_nowait/get/qsize for one reader): items in
    order, a get that waits is woken by a put, and a reader that never quite catches up does not
    make the list grow without end."""
    from transport_demo.server.wakeups import Inbox

    inbox: Inbox[bytes | None] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0.01)
    assert not reader.done()
    inbox.put_nowait(b"a")
    async with asyncio.timeout(1):
        assert await reader == b"a"
    inbox.put_nowait(b"0")
    for i in range(1, 10_000):  # always one item ahead of the reader: never empty
        inbox.put_nowait(str(i).encode())
        assert await inbox.get() == str(i - 1).encode()
        assert inbox.qsize() == 1
        assert len(inbox._items) <= 130  # taken items are dropped in halves
    inbox.put_nowait(None)
    assert await inbox.get() == b"9999"
    assert await inbox.get() is None
    assert inbox.qsize() == 0 and inbox._items == []
