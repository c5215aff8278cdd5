"""The notebook launcher (start, re-run, restart, busy port, stop with open streams); the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from transport_demo import PortInUseError, start_server
from transport_demo.server.settings import Settings

from .conftest import FAST


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_start_returns_quickly_and_serves() -> None:
    started = time.monotonic()
    server = start_server(port=0, **FAST)
    try:
        assert time.monotonic() - started < 2
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.url}/stats").status_code == 200
    finally:
        server.stop()
    assert not server.running


def test_same_port_same_settings_returns_the_running_server() -> None:
    port = free_port()
    first = start_server(port=port, **FAST)
    try:
        assert start_server(port=port, **FAST) is first
        cid = first.hub.call_from_thread(first.hub.aconnect_long_poll())
        restarted = start_server(port=port, **{**FAST, "poll_timeout": 2.0})
        assert restarted is not first and not first.running
        assert restarted.port == port and restarted.settings.poll_timeout == 2.0
        assert json.loads(cid)["connection_id"] not in restarted.hub
        other = start_server(port=free_port(), **FAST)
        assert other is not restarted and restarted.running
        other.stop()
    finally:
        for server in (first, restarted):
            server.stop()


def test_port_held_by_another_process_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(PortInUseError, match=f"Port {port}.*already in use"):
            start_server(port=port)
        assert time.monotonic() - started < 2


def test_stop_is_prompt_with_open_streams_polls_and_sockets() -> None:
    server = start_server(port=0, heartbeat_interval=5, poll_timeout=30)
    results: dict[str, Any] = {}
    http = httpx.Client(base_url=server.url, timeout=60)
    cid = http.post("/poll").json()["connection_id"]

    def held_poll() -> None:
        results["poll"] = http.post("/poll", json={"connection_id": cid, "last_seq": 0}).json()

    def sse() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            client.stream("GET", "/sse") as response,
        ):
            results["sse"] = list(response.iter_lines())

    def ws() -> None:
        with connect(f"{server.ws_url}/ws") as sock:
            try:
                while True:
                    sock.recv(60)
            except Exception as exc:  # the close
                results["ws"] = exc

    threads = [threading.Thread(target=f) for f in (held_poll, sse, ws)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(server.hub) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    for thread in threads:
        thread.join(5)
    http.close()
    assert results["poll"]["type"] == "timeout" and results["poll"]["reason"] == "shutdown"
    assert any("connected" in line for line in results["sse"])
    assert getattr(results["ws"], "rcvd", None) is not None and results["ws"].rcvd.code == 1001


def test_launcher_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    server = start_server(port=0, **FAST)
    with httpx.Client(base_url=server.url) as http:
        http.post("/poll", content=b"{")
        http.get("/stats")
    server.stop()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert any("Started server process" in line for line in server.log_lines())


def sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_cli(*args: str, timeout: float = 20, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    """``python -m transport_demo ARGS``, with SIGINT's default disposition whatever this test
    process inherited (a suite started with ``&`` from a script ignores SIGINT, and so would its
    children); ``ignore_sigint``: started the way such a background job or a Jupyter kernel's
    child is, with SIGINT ignored."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "transport_demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_ignored if ignore_sigint else sigint_default,
    )


def test_command_line_serves_the_app() -> None:
    port = free_port()
    process = run_cli(
        "--port",
        str(port),
        "--heartbeat-interval",
        "0.2",
        "--poll-timeout",
        "1",
        "--resume-grace",
        "2",
        "--allow-origin",
        "http://classroom.lan:8000",
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/poll")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.json()["poll_timeout"] == 1.0
        # The command line owns its process: the GC policy for many connections is on.
        assert httpx.get(f"http://127.0.0.1:{port}/stats").json()["gc_freezes"] >= 1
        with connect(f"ws://127.0.0.1:{port}/ws", origin="http://classroom.lan:8000") as ws:  # type: ignore[arg-type]
            assert json.loads(ws.recv(5))["heartbeat_interval"] == 0.2
        busy = run_cli("--port", str(port))
        _, err = busy.communicate(timeout=20)
        assert busy.returncode == 2 and f"Port {port}" in err
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert "Finished server process" in err and "Traceback" not in err


@pytest.mark.parametrize("sigint", ["default", "ignored"])
@pytest.mark.parametrize("moment", ["banner", "serving"])
def test_command_line_ctrl_c_after_the_banner_exits_130(moment: str, sigint: str) -> None:
    """Ctrl+C at once when "open http://..." is printed (uvicorn has not caught SIGINT yet), or
    once it serves; with SIGINT as Python sets it up, or inherited as ignored. Regression: a
    process that inherited "ignore" (a suite started with `&` from a script) exited 0 after its
    clean shutdown (uvicorn's re-raise of SIGINT was ignored), and one Ctrl+C during start-up was
    lost: the server went on serving."""
    port = free_port()
    process = run_cli("--port", str(port), ignore_sigint=sigint == "ignored")
    try:
        assert process.stdout is not None
        assert f"open http://127.0.0.1:{port}/" in process.stdout.readline()
        if moment == "serving":
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert httpx.get(f"http://127.0.0.1:{port}/stats").status_code == 200
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    if moment == "serving":
        assert "Finished server process" in err


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.5])
def test_command_line_ctrl_c_from_process_start_stops_it(delay: float) -> None:
    """Ctrl+C at process start, or a moment later: wherever start-up is, the process ends as
    interrupted, never serving on. main() answers 130; before it runs, Python's default applies
    while the package imports: death by SIGINT (which a shell reports as 130 too), or exit 1
    when the KeyboardInterrupt lands inside CPython's own start-up ("Fatal Python error:
    init_sys_streams") or inside an import that turns it into another error."""
    process = run_cli("--port", str(free_port()))
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    if process.returncode in (-signal.SIGINT, 1):  # main() had not begun
        assert "Started server process" not in err, err[-2000:]
    else:
        assert process.returncode == 130, err[-2000:]
        assert "Traceback" not in err


def test_environment_variables_configure_the_server() -> None:
    port = free_port()
    env = {**os.environ, "TRANSPORT_DEMO_POLL_TIMEOUT": "3.5", "TRANSPORT_DEMO_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "transport_demo"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert httpx.post(f"http://127.0.0.1:{port}/poll").json()["poll_timeout"] == 3.5
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_listening_socket_lets_asyncio_disable_nagle() -> None:
    """Regression: with a proto-0 socket asyncio skipped TCP_NODELAY on accepted connections, and
    every long-poll answer's body waited ~40 ms behind its headers."""
    from transport_demo.server.launcher import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_poll_answer_arrives_in_one_piece() -> None:
    server = start_server(port=0, **FAST)
    try:
        with httpx.Client(base_url=server.url) as http:
            cid = http.post("/poll").json()["connection_id"]
            took = []
            for i in range(10):
                server.hub.publish(cid, "x")
                started = time.perf_counter()
                http.post("/poll", json={"connection_id": cid, "last_seq": i})
                took.append(time.perf_counter() - started)
        took.sort()
        assert took[5] < 0.030  # the median; Nagle's 40 ms stall made every one slower
    finally:
        server.stop()


def test_the_command_line_jitters_holds_and_start_server_does_not() -> None:
    """A crowd's default on the command line: holds between 0.8 and 1 x the poll timeout, never
    more; start_server() keeps exact holds (notebooks time them)."""
    port = free_port()
    process = run_cli("--port", str(port), "--poll-timeout", "1")
    try:
        assert process.stdout is not None
        assert "open http://" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                cid = httpx.post(url + "/poll").json()["connection_id"]
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        holds = []
        for _ in range(6):
            started = time.monotonic()
            answer = httpx.post(url + "/poll", json={"connection_id": cid}, timeout=5).json()
            holds.append(time.monotonic() - started)
            assert answer["type"] == "timeout"
        assert all(0.75 <= hold <= 1.15 for hold in holds), holds
        assert min(holds) < 0.97, holds  # all six in the top 15 %: odds 1 in 100,000
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert Settings().poll_hold_jitter == 0
