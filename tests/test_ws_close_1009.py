"""A message over the limit closes with 1009, every time: the server drains the rest of the message
before closing TCP (transport_demo/ws_protocol.py), so no reset overtakes the close frame."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from transport_demo.ws_protocol import ends_with_client_close

pytestmark = pytest.mark.anyio

BIG = "x" * (2 << 20)  # 2 MiB: far over the frame limit, still arriving when the server fails it


async def oversized_close_code(ws_url: str) -> int | None:
    """Send a 2 MiB message, as a third-party client would; return the close code seen."""
    async with connect(f"{ws_url}/ws", max_size=None, compression=None) as ws:
        json.loads(await ws.recv())  # connected
        try:
            await ws.send(json.dumps({"message": BIG}))
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    return None


async def test_an_oversized_message_gets_1009(make_server: Any) -> None:
    server = make_server()
    assert await oversized_close_code(server.ws_url) == 1009


@pytest.mark.slow
async def test_an_oversized_message_gets_1009_every_time_under_load(make_server: Any) -> None:
    server = make_server()
    codes: list[int | None] = []
    for _ in range(5):  # 5 rounds of 6 at once: 30 oversized messages while the others load it
        codes += await asyncio.gather(*(oversized_close_code(server.ws_url) for _ in range(6)))
    assert codes == [1009] * 30
    # The server is fine afterwards.
    async with connect(f"{server.ws_url}/ws") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"


def test_the_close_frame_detector() -> None:
    close = bytes([0x88, 0x82, 1, 2, 3, 4]) + bytes([0x03 ^ 1, 0xF1 ^ 2])  # masked 1009
    assert ends_with_client_close(b"payload" + close)
    assert ends_with_client_close(bytes([0x88, 0x80, 0, 0, 0, 0]))  # no code
    assert not ends_with_client_close(b"x" * 300)
    assert not ends_with_client_close(close[:-1])
