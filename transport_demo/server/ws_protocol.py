"""uvicorn's WebSocket protocol (websockets-sansio), with a clean close after a message too big.

When a client sends a message over ``ws_max_size``, the websockets library fails the connection
with close code 1009, and uvicorn then closes the TCP connection at once, while the rest of the
message may still be arriving. Closing a socket with unread data makes the kernel send a reset
(RST), and a reset can overtake the close frame: the client then sees "connection reset" (or 1006)
instead of 1009 (reported under load with a 2 MiB message).

RFC 6455 would let a failing endpoint close at once (§7.1.7; §7.1.1 only says the server should
close TCP first). So here, after such a failure, the server keeps *reading and discarding* what the
client still sends (it does not process it) until the client's close frame has arrived, and only
then closes (HTTP/1.1's "lingering close", RFC 9112 §9.6, applied to WebSocket), bounded in bytes
(``DRAIN_BYTES``) and in time (``DRAIN_SECONDS``), so a client that never stops sending cannot
hold the connection open. The byte bound is sized to the largest message a client plausibly sends,
not to our own limit: a bound of four times ``ws_max_size`` (~1.5 MiB by default) still reset a
blocking client sending 2 MiB, since the server closed while that client was still writing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ProtocolError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close
from websockets.server import ServerProtocol
from websockets.utils import apply_mask

from .wakeups import Flag, Inbox

__all__ = [
    "CLOSE_CONFIRM_SECONDS",
    "DEFLATE_MEM_LEVEL",
    "DEFLATE_WINDOW_BITS",
    "DRAIN_BYTES",
    "DRAIN_QUIET_SECONDS",
    "DRAIN_SECONDS",
    "DrainingWebSocketProtocol",
    "ends_with_client_close",
]

DRAIN_SECONDS = 2.0
"""The longest the server keeps reading after failing a connection."""
DRAIN_BYTES = (16 << 20) + (64 << 10)
"""The most the server reads and discards (never buffers) after failing a connection, waiting for
the client's close, before it closes anyway: uvicorn's default ``ws_max_size``, 16 MiB, the largest
message a client used to uvicorn servers expects to send, plus room for its close frame and a few
small frames. When four times ``ws_max_size`` plus 1 KiB is more (a limit over ~4 MiB), that."""
DRAIN_QUIET_SECONDS = 0.25
"""Silence after which the client is taken to have sent everything it will send."""


CLOSE_CONFIRM_SECONDS = 0.05
"""Silence after what looks like the client's close frame before the server closes: the rest of an
oversized message is random-looking masked bytes, so a read can end in bytes that only look like
a close frame (one 2 MiB message of repeated text in ~150 had such a read, simulated over random
masks and read sizes, before the payload check below; none in 3,000 after it); a client still
writing sends more within this time and the drain goes on."""


def ends_with_client_close(data: bytes) -> bool:
    """Whether ``data`` ends with what looks like a client's close frame: FIN + opcode 8, masked,
    a payload of at most 125 bytes that is empty or a valid close code and UTF-8 reason (RFC 6455
    §5.5.1, §7.4; websockets' own ``Close.parse`` checks it). A false "no" only costs the quiet
    period; a false "yes" only shortens it to ``CLOSE_CONFIRM_SECONDS``."""
    for length in range(126):
        start = len(data) - 6 - length
        if start < 0:
            return False
        if data[start] != 0x88 or data[start + 1] != 0x80 | length:
            continue
        try:
            Close.parse(apply_mask(data[start + 6 :], data[start + 2 : start + 6]))
        except (ProtocolError, UnicodeDecodeError):
            continue
        return True
    return False


DEFLATE_WINDOW_BITS = 10
"""permessage-deflate's window, both ways (RFC 7692 §7.1.2): 1 KiB of history instead of
uvicorn's 4 KiB. This server's events are a few hundred bytes of JSON whose repeats (field names,
the connection id) sit in the last event or two, so a 1 KiB window compresses them as well:
17.3 bytes per event either way, measured with ``python -m transport_demo.bench --only throughput``.
With memLevel 3 it costs ~58 KiB per WebSocket instead of ~77 (``python -m
transport_demo.bench.memory "ours websocket"``, 500 connections). A client that does not offer
``client_max_window_bits`` keeps its own 32 KiB window, and our decompressor with it."""
DEFLATE_MEM_LEVEL = 3
"""zlib's memLevel for the compressor: its hash table, 4 KiB at 3 instead of 16 KiB at 5."""


class DrainingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol; after a failed connection (1009, a protocol error)
    it drains the client's remaining bytes before closing, so the close frame arrives intact.

    Lighter than uvicorn's for a connection that lives long: its event queue and writable flag are
    :class:`Inbox` and :class:`Flag`, and the handshake's request and response (their headers,
    ~4.5 KiB) are let go once the handshake is answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Inbox[Any] = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        if self.config.ws_per_message_deflate:
            # uvicorn's own choice is 12 window bits and memLevel 5; see DEFLATE_WINDOW_BITS.
            self.conn = ServerProtocol(
                extensions=[
                    ServerPerMessageDeflateFactory(
                        server_max_window_bits=DEFLATE_WINDOW_BITS,
                        client_max_window_bits=DEFLATE_WINDOW_BITS,
                        compress_settings={"memLevel": DEFLATE_MEM_LEVEL},
                    )
                ],
                max_size=self.config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )
        self._draining = False
        self._drain_budget = 0
        self._quiet: asyncio.TimerHandle | None = None

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Sent: nothing reads them again (uvicorn keeps them for the connection's life).
            self.request = self.response = None  # type: ignore[assignment]

    def handle_parser_exception(self) -> None:
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        # The close frame, without the end-of-stream websockets asks for: the client may still be
        # sending, and we keep reading until it is done.
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._draining = True
        # What an honest client that was mid-message can still have to send (see DRAIN_BYTES).
        self._drain_budget = max(DRAIN_BYTES, 4 * (self.config.ws_max_size or 0) + 1024)
        loop = asyncio.get_running_loop()
        # uvicorn closes the transport when the app ends unless close_timer is set: it is ours now.
        self.close_timer = loop.call_later(DRAIN_SECONDS, self._end_drain)
        self._quiet = loop.call_later(DRAIN_QUIET_SECONDS, self._end_drain)

    def data_received(self, data: bytes) -> None:
        if not self._draining:
            super().data_received(data)
            return
        self._drain_budget -= len(data)
        if self._drain_budget < 0:
            self._end_drain()
            return
        if self._quiet is not None:
            self._quiet.cancel()
        quiet = CLOSE_CONFIRM_SECONDS if ends_with_client_close(data) else DRAIN_QUIET_SECONDS
        self._quiet = asyncio.get_running_loop().call_later(quiet, self._end_drain)

    def _end_drain(self) -> None:
        for timer in (self._quiet, self.close_timer):
            if timer is not None:
                timer.cancel()
        self._quiet = self.close_timer = None
        self._draining = False
        self.transport.close()
