"""Shared fixtures: real servers on 127.0.0.1 with short intervals, and an anyio backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from transport_demo import RunningServer, start_server
from transport_demo.server import logs

FAST = {"heartbeat_interval": 0.2, "poll_timeout": 1.0, "resume_grace": 1.0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_server() -> Iterator[Callable[..., RunningServer]]:
    """Start servers on free ports (short intervals unless overridden); all stop afterwards."""
    started: list[RunningServer] = []

    def make(**options: Any) -> RunningServer:
        options = {**FAST, "port": 0, **options}
        server = start_server(**options)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def server_log_is_clean() -> Iterator[None]:
    """Every test: no server logged an error or a traceback meanwhile (bad input included)."""
    logs.recent.lines.clear()
    yield
    bad = [line for line in logs.recent.lines if " ERROR " in line or "Traceback" in line]
    assert not bad, "the server logged errors:\n" + "\n".join(bad[:5])


@pytest.fixture(scope="module")
def make_module_server() -> Iterator[RunningServer]:
    """One server for a whole module (for generated tests that call it thousands of times)."""
    server = start_server(**{**FAST, "port": 0, "poll_timeout": 0.2})
    yield server
    server.stop()
