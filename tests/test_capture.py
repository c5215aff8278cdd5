"""The packet lens (issue 25): the relay writes what crossed it as pcapng, and Wireshark's own
dissectors (Debian's tshark) read it: the HTTP requests and answers, the SSE stream, the WebSocket
handshake and every frame (the client's masked, their text readable), with TCP numbers Wireshark's
analysis finds nothing wrong with; cuts and refusals are resets; the file stops at its limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from transport_demo.lab.capture import Endpoint, TcpFlow
from transport_demo.lab.network import Network, network
from transport_demo.server.launcher import RunningServer

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(
    TSHARK is None and not os.environ.get("CI"),  # in CI a missing tshark fails (setup.sh has it)
    reason="tshark is missing: scripts/setup.sh installs Debian's tshark",
)


def tshark(path: Path, port: int, *args: str, protocol: str = "http") -> list[list[str]]:
    """Run tshark on ``path`` with ``port`` dissected as ``protocol``; rows of tab-separated
    fields."""
    assert TSHARK is not None, "tshark is missing: scripts/setup.sh installs Debian's tshark"
    done = subprocess.run(
        [TSHARK, "-r", str(path), "-d", f"tcp.port=={port},{protocol}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split("\t") for line in done.stdout.splitlines()]


def fields(path: Path, port: int, display_filter: str, *names: str) -> list[list[str]]:
    args = ["-Y", display_filter, "-T", "fields"]
    for name in names:
        args += ["-e", name]
    return tshark(path, port, *args)


def test_a_flow_counts_bytes_as_tcp_does() -> None:
    """Sans-I/O: the SYN and each FIN count one, data counts its bytes, every packet after the
    SYN acknowledges all the other side sent; the last ACK comes from the side that closed first."""
    flow = TcpFlow(Endpoint("127.0.0.1", 50000), Endpoint("127.0.0.1", 8000))
    syn, syn_ack, ack = flow.handshake()
    client_isn, server_isn = syn["TCP"].seq, syn_ack["TCP"].seq
    assert (str(syn["TCP"].flags), str(syn_ack["TCP"].flags), str(ack["TCP"].flags)) == (
        "S",
        "SA",
        "A",
    )
    assert syn_ack["TCP"].ack == (client_isn + 1) % 2**32
    request = flow.data(True, b"GET / HTTP/1.1\r\n\r\n")
    answer = flow.data(False, b"HTTP/1.1 200 OK\r\n\r\n")
    assert request["TCP"].seq == (client_isn + 1) % 2**32
    assert answer["TCP"].ack == (client_isn + 1 + 18) % 2**32
    server_fin = flow.fin(False)
    client_fin = flow.fin(True)
    assert server_fin["TCP"].seq == (server_isn + 1 + 19) % 2**32
    assert client_fin["TCP"].ack == (server_isn + 1 + 19 + 1) % 2**32
    (last,) = flow.finish()
    assert (last["TCP"].sport, str(last["TCP"].flags)) == (8000, "A")  # the server closed first
    assert last["TCP"].ack == (client_isn + 1 + 18 + 1) % 2**32
    assert flow.finish() == []

    cut = TcpFlow(Endpoint("127.0.0.1", 50001), Endpoint("127.0.0.1", 8000))
    cut.handshake()
    cut.data(True, b"x")
    (reset,) = cut.finish()
    assert (reset["TCP"].sport, str(reset["TCP"].flags)) == (8000, "RA")


@needs_tshark
def test_wireshark_reads_a_lesson(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = make_server(heartbeat_interval=0.3, poll_timeout=1)
    path = tmp_path / "lesson.pcapng"
    with network(server, capture=path) as net:
        opened = httpx.post(f"{net.url}/poll", json={}).json()
        httpx.post(
            f"{net.url}/poll", json={"connection_id": opened["connection_id"], "last_seq": 1}
        )
        with httpx.stream("GET", f"{net.url}/sse") as stream:
            start = time.monotonic()
            for _ in stream.iter_lines():
                if time.monotonic() - start > 0.8:  # the connected event and two heartbeats
                    break
        with connect(net.url.replace("http", "ws", 1) + "/ws") as ws:
            json.loads(ws.recv())  # connected
            ws.send(json.dumps({"message": "hello over the wire"}))
            while json.loads(ws.recv())["type"] != "user_message":
                pass
        port = net.port
        capture = net.capture
    assert capture is not None and capture.closed and not capture.full

    requests = fields(path, port, "http.request", "http.request.method", "http.request.uri")
    assert requests == [["POST", "/poll"], ["POST", "/poll"], ["GET", "/sse"], ["GET", "/ws"]]
    answers = fields(path, port, "http.response", "http.response.code")
    assert [row[0] for row in answers] == ["200", "200", "101"]  # the stream never ended
    # The SSE stream: its segments, as the shaper cut them, carry the events' own lines (each
    # a chunk of the chunked body: its size in hex, then the lines).
    sse_text = "".join(
        bytes.fromhex(row[0]).decode(errors="replace")  # the WebSocket's frames are in there too
        for row in fields(path, port, f"tcp.srcport == {port} && tcp.len > 0", "tcp.payload")
    )
    assert "text/event-stream" in sse_text and 'data: {"type":"heartbeat"' in sse_text
    frames = fields(
        path,
        port,
        "websocket",
        "websocket.opcode",
        "websocket.mask",
        "websocket.payload.close.status_code",
        "text",
    )
    kinds = [(row[0], row[1]) for row in frames]
    assert kinds[:3] == [("1", "0"), ("1", "1"), ("1", "0")]  # connected, the text, the echo
    assert '"hello over the wire"' in frames[1][3]  # the masked text, unmasked by Wireshark
    assert '"type":"user_message"' in frames[2][3]
    assert [(row[0], row[1], row[2]) for row in frames[3:]] == [
        ("8", "1", "1000"),
        ("8", "0", "1000"),
    ]
    # Wireshark's TCP analysis and its dissectors find nothing wrong. (A connection may end with
    # a reset instead of a FIN: when one side aborts, the relay aborts the other, as the capture
    # says; Wireshark flags every reset as a warning.)
    problems = tshark(
        path,
        port,
        "-Y",
        "tcp.analysis.flags || _ws.malformed"
        " || (_ws.expert.severity >= warning && !tcp.flags.reset)",
    )
    assert problems == []


@needs_tshark
def test_a_cut_and_an_outage_are_resets(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = make_server()
    path = tmp_path / "cut.pcapng"
    with network(server, capture=path) as net:
        with httpx.stream("GET", f"{net.url}/sse") as stream:
            lines = stream.iter_lines()
            next(lines)
            net.outage(2)  # the stream is reset; a new connection is refused meanwhile
            with pytest.raises(httpx.TransportError):
                for _ in lines:
                    pass
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{net.url}/stats")
        port = net.port
    rows = fields(
        path, port, "tcp.flags.reset == 1 || tcp.flags.syn == 1", "tcp.srcport", "tcp.flags.str"
    )
    flags = [(int(source) == port, text.replace("·", "")) for source, text in rows]
    # The stream's handshake and its reset by the server's side; then a SYN answered by a reset.
    assert [f for f in flags if "R" in f[1] or f[1] == "S"] == [
        (False, "S"),
        (True, "AR"),
        (False, "S"),
        (True, "AR"),
    ]


@needs_tshark
def test_the_capture_stops_at_its_limit(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = make_server()
    path = tmp_path / "small.pcapng"
    with network(server, capture=path, capture_limit=2000) as net:
        for _ in range(5):
            httpx.get(f"{net.url}/stats")
        capture: Any = net.capture
        port = net.port
    assert capture.full and "full" in repr(capture)
    assert 0 < path.stat().st_size <= 2000 + 1024  # the file's own header blocks besides
    packets = tshark(path, port, "-T", "fields", "-e", "frame.number")
    assert len(packets) == capture.packets  # every packet written is whole and readable


@needs_tshark
def test_wireshark_decrypts_http2_with_the_servers_secrets(
    make_server: Callable[..., RunningServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSLKEYLOGFILE set, the https server writes its TLS secrets; with them Wireshark reads
    the HTTP/2 frames inside the capture: the request's headers and the answer's status."""
    secrets = tmp_path / "secrets.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(secrets))
    server = make_server(https=True)
    path = tmp_path / "h2.pcapng"
    with network(server, capture=path) as net:
        with httpx.Client(http2=True, verify=server.ssl_context()) as client:
            assert client.get(f"{net.url}/stats").http_version == "HTTP/2"
        port = net.port
    assert "SERVER_TRAFFIC_SECRET_0" in secrets.read_text()
    decrypt = ("-o", f"tls.keylog_file:{secrets}", "-T", "fields")
    headers = tshark(
        path, port, "-Y", "http2.type == 1", *decrypt, "-e", "http2.headers.path",
        "-e", "http2.headers.status", protocol="tls",
    )  # fmt: skip
    assert ["/stats", ""] in headers and ["", "200"] in headers
    # Without the secrets, the same file shows only TLS records.
    assert tshark(path, port, "-Y", "http2", protocol="tls") == []


@needs_tshark
def test_quic_through_the_udp_relay_is_in_the_capture(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """The relay's UDP half writes each datagram it delivers; tshark reads them as QUIC (Decode
    As on the relay's port): the client's Initial packets and the server's answers, long headers
    for the handshake, then short ones."""
    server = make_server()
    path = tmp_path / "quic.pcapng"
    net = relayed_session(server, path, "over QUIC")
    port = net.port
    delivered = net.datagrams  # counted as written: read once the relay stopped
    assert TSHARK is not None
    names = ["-e", "udp.srcport", "-e", "quic.header_form", "-e", "quic.long.packet_type"]
    done = subprocess.run(
        [
            TSHARK,
            "-r",
            str(path),
            "-d",
            f"udp.port=={port},quic",
            "-Y",
            "quic",
            "-T",
            "fields",
            *names,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert len(rows) == delivered  # every datagram delivered, as QUIC, and nothing else
    first_source, first_form, first_type = rows[0]
    assert int(first_source) != port and first_form.startswith("1") and first_type.startswith("0")
    assert any(int(source) == port for source, *_ in rows)  # the server's answers
    assert any(form == "0" for _, form, _ in rows)  # short headers: the handshake is done


@needs_tshark
def test_wireshark_decrypts_quic_with_the_servers_secrets(
    make_server: Callable[..., RunningServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSLKEYLOGFILE set, the WebTransport endpoint appends QUIC's TLS secrets (aioquic's
    secrets log); with them Wireshark reads the STREAM frames inside the 1-RTT packets: the text
    the client sent is there in the clear, and without the secrets it is not."""
    secrets = tmp_path / "secrets.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(secrets))
    server = make_server()
    path = tmp_path / "quic.pcapng"
    port = relayed_session(server, path, "read by Wireshark").port
    assert "SERVER_TRAFFIC_SECRET_0" in secrets.read_text()
    assert TSHARK is not None

    def stream_data(*keys: str) -> str:
        done = subprocess.run(
            [TSHARK, "-r", str(path), "-d", f"udp.port=={port},quic", *keys, "-Y",
             "quic.stream_data", "-T", "fields", "-e", "quic.stream_data"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout.replace(",", "").replace("\n", "")

    assert b"read by Wireshark".hex() in stream_data("-o", f"tls.keylog_file:{secrets}")
    assert stream_data() == ""  # without the secrets: encrypted packets only


def relayed_session(server: RunningServer, path: Path, text: str) -> Network:
    """One WebTransport session through a capturing relay: connected, ``text`` sent, its echo
    read; the relay is closed (its capture written) when this returns."""
    import asyncio

    from transport_demo.clients import WebTransportClient

    async def session(url: str) -> None:
        async with WebTransportClient(url, backoff_initial=0.05) as client:
            await client.wait_connected()
            await client.send(text)
            while (await client.next_event(5))["type"] != "user_message":
                pass

    with network(server, capture=path) as net:
        asyncio.run(session(net.url))
    return net
