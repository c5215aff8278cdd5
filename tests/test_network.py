"""The network shaper: delay, jitter, bandwidth and stalls measured against their settings, its
bounds, and a clean stop. Timings are medians of several samples with tolerances well above the
scheduler's noise on a shared machine (a late wake-up only ever adds time, so lower bounds are
tight and upper bounds loose)."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from transport_demo.lab.network import Conditions, Direction, Network, network
from transport_demo.server.launcher import start_server

from .waiting import until


class _Echo(socketserver.BaseRequestHandler):
    """Echo bytes back; a first byte ``S`` instead asks for ``SOURCE`` bytes sent at once."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(65536):
            if data == b"S":
                sock.sendall(b"y" * SOURCE)
            else:
                sock.sendall(data)


SOURCE = 96 * 1024


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def _round_trips(port: int, samples: int) -> list[float]:
    """Milliseconds per one-byte round trip, after a first exchange (the handshake's)."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"w")
        sock.recv(1)
        for _ in range(samples):
            start = time.perf_counter()
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            times.append((time.perf_counter() - start) * 1000)
    return times


def test_delay_shows_up_in_the_round_trip(echo: int) -> None:
    with network(echo) as loopback:
        base = statistics.median(_round_trips(loopback.port, 9))
    with network(echo, delay_ms=20) as net:
        shaped = statistics.median(_round_trips(net.port, 9))
    assert base < 5
    assert 40 <= shaped <= 40 + 8, shaped  # twice the one-way delay, within a few ms


def test_a_new_connection_pays_a_handshake_round_trip(echo: int) -> None:
    firsts = []
    with network(echo, delay_ms=25) as net:
        for _ in range(5):
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
                sock.sendall(b"x")
                sock.recv(1)
            firsts.append((time.perf_counter() - start) * 1000)
    first = statistics.median(firsts)
    assert 100 <= first <= 100 + 20, firsts  # 1 RTT to connect + 1 RTT for the byte


def test_jitter_stays_within_its_band_and_never_reorders(echo: int) -> None:
    with network(echo, delay_ms=10, jitter_ms=5, seed=1) as net:
        times = _round_trips(net.port, 15)
        with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
            for i in range(50):
                sock.sendall(b"%d," % i)
            got = b""
            while got.count(b",") < 50:
                got += sock.recv(4096)
    assert min(times) >= 10 and statistics.median(times) <= 30 + 5
    assert max(times) - min(times) > 1  # it does vary
    assert got == b"".join(b"%d," % i for i in range(50))  # in order, every byte


def test_bandwidth_caps_a_transfer(echo: int) -> None:
    kbit = 2000
    with (
        network(echo, bandwidth_kbit=kbit) as net,
        socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock,
    ):
        sock.sendall(b"S")
        got = sock.recv(65536)
        start = time.perf_counter()  # from the first byte: the rate, not the latency
        while len(got) < SOURCE:
            got += sock.recv(65536)
        seconds = time.perf_counter() - start
    expected = (SOURCE - 1460) * 8 / (kbit * 1000)  # ~0.39 s
    assert expected * 0.95 <= seconds <= expected * 1.3, (seconds, expected)


def test_a_stall_holds_one_direction_without_closing(echo: int) -> None:
    with (
        network(echo) as net,
        socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock,
    ):
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        net.stall(Direction.DOWN, seconds=0.4)
        start = time.perf_counter()
        sock.sendall(b"b")  # goes up, is echoed, waits on the way down
        until(lambda: net.buffered == 1, timeout=5)  # held by the relay: half-open
        assert sock.recv(1) == b"b"
        waited = time.perf_counter() - start
        assert net.active == 1
    assert 0.4 <= waited <= 0.4 + 0.2, waited


def test_what_a_stall_held_arrives_at_once_in_order(echo: int) -> None:
    with (
        network(echo, delay_ms=5) as net,
        socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock,
    ):
        sock.sendall(b"w")
        sock.recv(1)
        with net.stalled("down"):
            for i in range(5):
                sock.sendall(b"%d" % i)
                time.sleep(0.02)
            until(lambda: net.buffered == 5, timeout=5)
        got = b""
        while len(got) < 5:
            got += sock.recv(16)
    assert got == b"01234"  # head-of-line: everything that waited, together, in order


def test_a_stall_up_keeps_the_request_from_the_server(echo: int) -> None:
    with network(echo) as net:
        net.stall("up")
        with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
            sock.sendall(b"q")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            net.resume()
            sock.settimeout(5)
            assert sock.recv(1) == b"q"


def test_buffered_bytes_are_bounded(echo: int) -> None:
    limit = 16 * 1024
    with network(echo, buffer_bytes=limit) as net:
        net.stall("down")
        with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
            sock.sendall(b"S")  # the target sends 96 KiB that cannot go down
            time.sleep(0.3)
            held = net.buffered
            net.resume()
            got = b""
            while len(got) < SOURCE:
                got += sock.recv(65536)
    assert 0 < held <= limit + 65536  # the limit, plus at most one read
    assert len(got) == SOURCE


def test_connections_are_bounded(echo: int) -> None:
    with network(echo, max_connections=2) as net:
        a = socket.create_connection(("127.0.0.1", net.port), timeout=5)
        b = socket.create_connection(("127.0.0.1", net.port), timeout=5)
        until(lambda: net.active == 2, timeout=5)
        with (
            socket.create_connection(("127.0.0.1", net.port), timeout=5) as c,
            contextlib.suppress(ConnectionResetError),
        ):
            assert c.recv(1) == b""  # closed at once
        assert net.refused == 1
        a.close()
        b.close()


def test_cut_resets_every_connection(echo: int) -> None:
    with network(echo) as net:
        with socket.create_connection(("127.0.0.1", net.port), timeout=5) as sock:
            sock.sendall(b"x")
            sock.recv(1)
            assert net.cut() == 1
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
        until(lambda: net.active == 0, timeout=5)


def test_set_changes_the_delay_from_now_on(echo: int) -> None:
    with network(echo) as net:
        assert net.set(delay_ms=15) == Conditions(delay_ms=15)
        assert 30 <= statistics.median(_round_trips(net.port, 5)) <= 30 + 8


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_leaves_no_thread_task_or_socket(echo: int) -> None:
    # Threads and sockets new since here, waited for: the echo server behind the relay runs a
    # thread per connection (ThreadingTCPServer), which ends a moment after the relay's upstream
    # socket closes. A leak would never end.
    threads, fds = set(threading.enumerate()), _fds()
    net = Network(echo, Conditions(delay_ms=5))
    sock = socket.create_connection(("127.0.0.1", net.port), timeout=5)
    sock.sendall(b"x")
    net.stall("down")  # a writer waiting out a stall must not outlive the relay
    until(lambda: net.active == 1, timeout=5)
    port = net.port
    net.close()
    net.close()  # twice is fine
    assert net._loop.is_closed()
    assert not net._thread.is_alive()
    sock.close()
    until(lambda: not set(threading.enumerate()) - threads, timeout=5, what="no new thread left")
    until(lambda: _fds() <= fds, timeout=5, what="no new socket left")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    with pytest.raises(RuntimeError, match="closed"):
        net.cut()


def test_http_through_the_network_pays_its_round_trips() -> None:
    server = start_server(port=0)
    firsts, agains = [], []
    try:
        with network(server, delay_ms=25) as net:
            assert net.url.startswith("http://127.0.0.1:") and net.url != server.url
            with httpx.Client(timeout=10) as http:  # made once: its TLS setup costs time
                for _ in range(5):  # "Connection: close": each request on a new connection
                    start = time.perf_counter()
                    answer = http.get(net.url + "/stats", headers={"Connection": "close"})
                    firsts.append(time.perf_counter() - start)
                    assert answer.status_code == 200
                http.get(net.url + "/stats")
                for _ in range(5):
                    start = time.perf_counter()
                    http.get(net.url + "/stats")
                    agains.append(time.perf_counter() - start)
    finally:
        server.stop()
    # A new connection: the handshake and the request, two round trips; kept alive: one.
    assert 0.100 <= statistics.median(firsts) <= 0.100 + 0.04, firsts
    assert 0.050 <= statistics.median(agains) <= 0.050 + 0.03, agains


def test_a_lost_tcp_segment_arrives_an_rto_late_and_holds_the_bytes_behind_it(echo: int) -> None:
    """TCP loss as TCP behaves: nothing is dropped, a lost segment comes one RTO late and every
    byte after it on the connection waits (in order, whole)."""
    with network(echo, delay_ms=2, loss=0.15, rto_ms=80, seed=2) as net:
        with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
            sent: list[float] = []
            arrived: list[float] = []
            received = b""
            for i in range(30):
                sent.append(time.perf_counter())
                sock.sendall(b"%02d" % i)
                time.sleep(0.01)
            while len(received) < 60:
                data = sock.recv(65536)
                assert data
                received += data
                arrived += [time.perf_counter()] * (len(received) // 2 - len(arrived))
        assert net.retransmitted > 0
    assert received == b"".join(b"%02d" % i for i in range(30))  # whole and in order
    delays = [(a - s) * 1000 for s, a in zip(sent, arrived, strict=True)]
    assert max(delays) >= 80  # a lost segment waited at least one RTO
    late = next(i for i, d in enumerate(delays) if d >= 80)
    if late + 1 < 30 and sent[late + 1] - sent[late] < 0.02:
        assert delays[late + 1] >= 40  # the next one, sent ~10 ms later, waited behind it
