"""The GC policy: a server started with gc_freeze freezes what survived start-up (and keeps
serving); without it nothing is frozen by the server."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from transport_demo.server import gc_policy


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's objects go back to normal collection


def test_freeze_now_moves_survivors_to_the_permanent_generation(unfrozen: None) -> None:
    assert gc.get_freeze_count() == 0
    survivors = [[i] for i in range(1000)]
    gc_policy.freeze_now()
    assert gc.get_freeze_count() >= len(survivors)


def test_a_server_with_gc_freeze_freezes_and_serves(make_server: Any, unfrozen: None) -> None:
    server = make_server(gc_freeze=True)
    stats = httpx.get(f"{server.url}/stats").json()
    assert stats["gc_freezes"] >= 1
    assert gc.get_freeze_count() > 0
    assert httpx.post(f"{server.url}/poll", json={}).json()["type"] == "connected"


def test_a_server_without_it_freezes_nothing(make_server: Any, unfrozen: None) -> None:
    server = make_server()
    assert httpx.get(f"{server.url}/stats").json()["gc_freezes"] == 0
    assert gc.get_freeze_count() == 0
