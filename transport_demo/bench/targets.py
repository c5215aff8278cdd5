"""Where the servers under test run and how they are told to push: a server family in its own
process (:class:`ServerProcess`), or our server in a background thread of this process as a
notebook runs it (:class:`ThreadServer`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from .probes import RawHTTP
from .system import bench_certificate, children, client_tls, free_port, stamp

if TYPE_CHECKING:
    from ..lab.local_redis import LocalRedis

__all__ = ["ServerProcess", "ThreadServer"]


class ServerProcess:
    """``with ServerProcess("fastapi", heartbeat=5) as server:`` — one family on a free port.
    ``"ours-redis:2"`` is ours on a Redis started for it, in two worker processes."""

    def __init__(self, family: str, heartbeat: float) -> None:
        self.family, _, workers = family.partition(":")
        self.workers = int(workers or 1)
        self.heartbeat = heartbeat
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.store: LocalRedis | None = None  # the Redis an ``ours-redis`` family runs on
        # The https family answers over TLS only: its control requests (push, gc) go that way.
        self.tls: ssl.SSLContext | None = None
        if self.family == "ours-https":
            bench_certificate()  # made here, so that the server process inherits its files
            self.tls = client_tls("http/1.1")

    @property
    def scheme(self) -> str:
        """``http`` or ``https``: how to reach the control routes (``/bench/…``)."""
        return "http" if self.tls is None else "https"

    @property
    def pids(self) -> list[int]:
        """The server's processes: the one started, and its workers if it has any."""
        return [self.pid, *children(self.pid)]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "BENCH_HEARTBEAT": str(self.heartbeat), "PYTHONUNBUFFERED": "1"}
        if self.family == "ours-redis":
            from ..lab.local_redis import start_redis

            self.store = start_redis()
            env |= {"BENCH_REDIS_URL": self.store.url, "BENCH_WORKERS": str(self.workers)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "transport_demo.bench.servers", self.family, str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError(f"the {self.family} server did not start")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # ready to answer, not only listening
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    sock = raw
                    if self.tls is not None:
                        sock = self.tls.wrap_socket(raw, server_hostname="127.0.0.1")
                    sock.sendall(b"GET /bench/push?n=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/1.1 200") and self._all_workers_up():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"the {self.family} server does not answer")

    def _all_workers_up(self) -> bool:
        """Every worker has said it is alive in Redis (one answering is not enough)."""
        if self.workers == 1:
            return True
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as answer:
            return len(json.loads(answer.read()).get("processes", [])) >= self.workers

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    async def push(self, to: str, n: int, rate: float, size: int) -> None:
        http = RawHTTP(self.port, self.tls)
        try:
            await http.request("GET", f"/bench/push?to={to}&n={n}&rate={rate}&size={size}")
        finally:
            http.close()


class ThreadServer:
    """Our server started with ``start_server()`` in a background thread of this process, pushed
    to from another thread with ``hub.publish`` — the path a notebook takes."""

    family = "ours"

    def __init__(self, heartbeat: float) -> None:
        self.heartbeat = heartbeat
        self.server: Any = None
        self.port = 0
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ThreadServer:
        from ..server.launcher import start_server

        self.server = start_server(
            port=0, heartbeat_interval=self.heartbeat, poll_timeout=self.heartbeat
        )
        self.port = self.server.port
        return self

    def __exit__(self, *exc_info: object) -> None:
        for thread in self._threads:
            thread.join(30)
        self.server.stop()

    def _push(self, to: str, n: int, rate: float, size: int) -> None:
        from ..server.errors import QueueFull

        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = time.monotonic()
        for _ in range(n):
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            while True:
                try:
                    self.server.hub.publish(to, stamp(size))
                    break
                except QueueFull:
                    time.sleep(0.001)

    async def push(self, to: str, n: int, rate: float, size: int) -> None:
        thread = threading.Thread(target=self._push, args=(to, n, rate, size), daemon=True)
        self._threads.append(thread)
        thread.start()
        await asyncio.sleep(0)
