"""WebSocket at the byte level, for the notebooks: frames decoded field by field, and real frames
captured from the running server by a client written out by hand on a plain TCP socket.

* :func:`decode` and :func:`encode` — one frame (RFC 6455 §5.2), every field kept: FIN, RSV1-3,
  opcode, MASK, which of the three length forms was used, the masking key, the payload as it was
  on the wire and unmasked. Short on purpose: read it next to the RFC's diagram.
* :func:`accept_key` — ``Sec-WebSocket-Accept`` from ``Sec-WebSocket-Key`` (§4.2.2).
* :class:`RawWebSocket` — does the opening handshake itself, sends masked frames, reads the
  server's frames raw; every frame both ways is kept in ``.frames``. It can offer
  permessage-deflate (RFC 7692) and send a message compressed or not.
* :func:`close_seen` and :class:`CuttablePath` — what a third-party client (``websockets``)
  reports when a connection ends: the close code the server sent, or 1006 after a cut.

Everything is synchronous: nothing to await in a cell.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.connection import Connection

__all__ = [
    "CLOSE_CODES",
    "GUID",
    "OPCODES",
    "Capture",
    "CloseSeen",
    "CuttablePath",
    "IncompleteFrame",
    "RawWebSocket",
    "WireFrame",
    "accept_key",
    "close_payload",
    "close_seen",
    "decode",
    "decode_all",
    "deflate",
    "encode",
    "mask",
]

# RFC 6455 §11.8 (opcodes) and §7.4.1 (close codes), plus IANA's 1012 and this server's 4000.
OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",  # never sent on the wire: a close frame without a code
    1006: "abnormal closure",  # never sent on the wire: no close frame at all
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    4000: "superseded by a resumed connection (this server's own code)",
}
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3: the same for every server
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: every compressed message ends so; it's cut


# -- One frame ----------------------------------------------------------------------------------


class IncompleteFrame(ValueError):
    """The bytes end before the frame does: read more (``needed`` bytes in all, if known)."""

    def __init__(self, needed: int | None) -> None:
        super().__init__(f"incomplete frame (needs {needed or 'more'} bytes)")
        self.needed = needed


def _hex(data: bytes, limit: int = 24) -> str:
    shown = data[:limit].hex(" ")
    return shown + (f" … ({len(data)} bytes)" if len(data) > limit else "")


@dataclass(frozen=True)
class WireFrame:
    """One WebSocket frame, every field as it was on the wire (RFC 6455 §5.2)."""

    raw: bytes  # the whole frame as sent
    fin: bool  # the last frame of its message
    rsv1: bool  # with permessage-deflate: this message is compressed (RFC 7692 §6)
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool  # every client-to-server frame is masked, no server frame is (§5.1)
    length: int  # the payload's length in bytes
    length_form: str  # "7-bit", "16-bit" or "64-bit": how the length was written (§5.2)
    mask_key: bytes | None  # 4 random bytes chosen by the client for this frame
    payload_on_wire: bytes  # as sent: masked if ``masked``
    payload: bytes  # unmasked (still compressed if ``rsv1``)

    @property
    def opcode_name(self) -> str:
        return OPCODES.get(self.opcode, "reserved")

    @property
    def header(self) -> bytes:
        """The bytes before the payload: 2 fixed, 0, 2 or 8 of length, 0 or 4 of masking key."""
        return self.raw[: len(self.raw) - self.length]

    @property
    def close_code(self) -> int | None:
        """A close frame's code: the first two payload bytes, big-endian (§5.5.1)."""
        if self.opcode != 0x8 or len(self.payload) < 2:
            return None
        return int.from_bytes(self.payload[:2], "big")

    @property
    def close_reason(self) -> str | None:
        """A close frame's reason: the UTF-8 text after the code."""
        if self.close_code is None:
            return None
        return self.payload[2:].decode("utf-8", "replace")

    def explain(self) -> str:
        """The frame field by field, each with what it means."""
        b0, b1 = self.raw[0], self.raw[1]
        lines = [
            f"{len(self.raw)} bytes: header {_hex(self.header)} + payload {self.length} bytes",
            f"  byte 0 = {b0:08b}",
            f"    FIN     {int(self.fin)}      "
            + (
                "the last frame of its message"
                if self.fin
                else "more frames of this message follow"
            ),
            f"    RSV1    {int(self.rsv1)}      "
            + ("compressed (permessage-deflate, RFC 7692)" if self.rsv1 else "not compressed"),
            f"    RSV2-3  {int(self.rsv2)} {int(self.rsv3)}    no extension uses them here",
            f"    opcode  {self.opcode:04b}   0x{self.opcode:X} = {self.opcode_name}",
            f"  byte 1 = {b1:08b}",
            f"    MASK    {int(self.masked)}      "
            + ("masked (client to server)" if self.masked else "not masked (server to client)"),
            f"    length  {b1 & 0x7F:<7}"
            + {
                "7-bit": f"the length itself: {self.length}",
                "16-bit": f"126 = the next 2 bytes hold it: {self.length}",
                "64-bit": f"127 = the next 8 bytes hold it: {self.length}",
            }[self.length_form],
        ]
        if self.mask_key is not None:
            lines.append(f"  masking key  {self.mask_key.hex(' ')}")
            lines.append(f"  payload as sent  {_hex(self.payload_on_wire)}")
            lines.append(f"  unmasked         {_hex(self.payload)}")
        else:
            lines.append(f"  payload  {_hex(self.payload)}")
        if self.close_code is not None:
            meaning = CLOSE_CODES.get(self.close_code, "")
            lines.append(
                f"  close code {self.close_code} ({meaning}), reason {self.close_reason!r}"
            )
        elif self.opcode == 0x1 and not self.rsv1 and self.fin:
            lines.append(f"  as text  {self.payload.decode('utf-8', 'replace')[:200]!r}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        flags = "FIN" if self.fin else "no FIN"
        flags += " RSV1" if self.rsv1 else ""
        flags += f" masked by {self.mask_key.hex()}" if self.mask_key else ""
        return f"<{self.opcode_name} frame, {flags}, {self.length} bytes ({self.length_form})>"


def mask(data: bytes, key: bytes) -> bytes:
    """XOR each byte with the key's byte at the same position modulo 4 (§5.3).

    The same function masks and unmasks: XOR twice with the same key gives the data back.
    """
    return bytes(byte ^ key[i % 4] for i, byte in enumerate(data))


def decode(data: bytes) -> WireFrame:
    """Decode the frame at the start of ``data`` (more bytes after it are ignored).

    Raises :class:`IncompleteFrame` if ``data`` ends before the frame does. It reads, it doesn't
    judge: the RFC's rules (control frames ≤ 125 bytes and never fragmented, reserved bits and
    opcodes unused, the top bit of a 64-bit length 0) are a real parser's job, as in
    ``websockets.frames.Frame.parse``.
    """
    if len(data) < 2:
        raise IncompleteFrame(None)
    b0, b1 = data[0], data[1]
    length = b1 & 0b0111_1111
    at = 2
    if length == 126:  # the next 2 bytes are the length
        form, size = "16-bit", 2
    elif length == 127:  # the next 8 bytes are the length (the top bit must be 0)
        form, size = "64-bit", 8
    else:
        form, size = "7-bit", 0
    if size:
        if len(data) < at + size:
            raise IncompleteFrame(None)
        length = int.from_bytes(data[at : at + size], "big")
        at += size
    masked = bool(b1 & 0b1000_0000)
    key = None
    if masked:
        if len(data) < at + 4:
            raise IncompleteFrame(None)
        key = data[at : at + 4]
        at += 4
    end = at + length
    if len(data) < end:
        raise IncompleteFrame(end)
    on_wire = data[at:end]
    return WireFrame(
        raw=data[:end],
        fin=bool(b0 & 0b1000_0000),
        rsv1=bool(b0 & 0b0100_0000),
        rsv2=bool(b0 & 0b0010_0000),
        rsv3=bool(b0 & 0b0001_0000),
        opcode=b0 & 0b0000_1111,
        masked=masked,
        length=length,
        length_form=form,
        mask_key=key,
        payload_on_wire=on_wire,
        payload=mask(on_wire, key) if key is not None else on_wire,
    )


def decode_all(data: bytes) -> list[WireFrame]:
    """Every frame in ``data``, which must end where a frame ends."""
    frames = []
    while data:
        frame = decode(data)
        frames.append(frame)
        data = data[len(frame.raw) :]
    return frames


def encode(
    payload: bytes,
    opcode: int = 0x1,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """One frame with the shortest length form; masked when ``mask_key`` is given (4 bytes)."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if mask_key is not None else 0
    if len(payload) < 126:
        head += bytes([mask_bit | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([mask_bit | 126]) + len(payload).to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + len(payload).to_bytes(8, "big")
    if mask_key is None:
        return head + payload
    return head + mask_key + mask(payload, mask_key)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code in two bytes, big-endian, then the reason in UTF-8."""
    return code.to_bytes(2, "big") + reason.encode()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept``: base64 of the SHA-1 of the client's key followed by the GUID."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def deflate(data: bytes, window_bits: int = 15) -> bytes:
    """Compress one message for permessage-deflate: raw DEFLATE, flushed, its last 4 bytes cut.

    A fresh compressor each time (no context kept from message to message), which every peer
    can read.
    """
    compressor = zlib.compressobj(wbits=-max(window_bits, 9))
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(DEFLATE_TAIL)
    return out[: -len(DEFLATE_TAIL)]


# -- Frames from the real server ----------------------------------------------------------------


@dataclass
class Capture:
    """A frame as it went by: who sent it, and (for data frames) the message data it carries."""

    direction: str  # "client → server" or "server → client"
    frame: WireFrame
    data: bytes | None = None  # the message's bytes after decompression, when the frame ends one

    @property
    def text(self) -> str | None:
        return None if self.data is None else self.data.decode("utf-8", "replace")

    def explain(self) -> str:
        shown = f"{self.direction}: {self.frame.explain()}"
        if self.frame.rsv1 and self.text is not None:
            shown += f"\n  decompressed  {self.text[:200]!r}"
        return shown

    def __repr__(self) -> str:
        line = f"{self.direction}  {self.frame!r}"
        if self.frame.close_code is not None:
            line += f" code {self.frame.close_code} {self.frame.close_reason!r}"
        elif self.text is not None and self.frame.opcode != 0x2:
            line += f"  {self.text[:70]!r}"
        elif self.frame.opcode in (0x9, 0xA):
            line += f"  {self.frame.payload!r}"
        return line


CLIENT, SERVER = "client → server", "server → client"
# Chromium's offer; Firefox's is a bare "permessage-deflate" (a server may not limit its window).
BROWSER_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


class RawWebSocket:
    """A WebSocket client written out by hand: the handshake, masking, frames, nothing hidden.

    ``url`` is the server's ``http://host:port``. ``compress=True`` offers permessage-deflate as
    Chromium does (Firefox's offer has no ``client_max_window_bits``, so a server may not limit
    its window: RFC 7692 §7.1.2.2). Every frame sent or received is kept in :attr:`frames`, in
    order.

    A background thread reads the server's frames as they come (:meth:`read` hands them out in
    order) and answers the server's pings with pongs, as every client must: uvicorn pings every
    20 s and closes a connection whose pong doesn't come. Both show up in :attr:`frames`.
    """

    def __init__(
        self,
        url: str,
        *,
        path: str = "/ws",
        origin: str | None = None,
        compress: bool = False,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        self.timeout = timeout
        self.frames: list[Capture] = []
        self.key = base64.b64encode(os.urandom(16)).decode()  # 16 random bytes (§4.1)
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin:
            lines.append(f"Origin: {origin}")
        if compress:
            lines.append(f"Sec-WebSocket-Extensions: {BROWSER_DEFLATE_OFFER}")
        self.request = "\r\n".join(lines) + "\r\n\r\n"
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.sock.sendall(self.request.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            data = self.sock.recv(65536)
            if not data:
                break
            received += data
        head, _, rest = received.partition(b"\r\n\r\n")
        self.response = head.decode("latin-1")
        self.status = int(self.response.split(" ", 2)[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in self.response.split("\r\n")[1:])
        }
        extensions = self.headers.get("sec-websocket-extensions", "")
        self.compressed = "permessage-deflate" in extensions  # the server accepted the offer
        self.client_window_bits = 15
        for param in extensions.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "client_max_window_bits" and value:
                self.client_window_bits = int(value)
        self._send_lock = threading.Lock()
        self._received: queue.Queue[Capture | None] = queue.Queue()
        self._ended = threading.Event()  # the server's end of the stream (its FIN) was read
        if self.status == 101:
            threading.Thread(target=self._read_frames, args=(rest,), daemon=True).start()
        else:  # refused: an HTTP answer, no WebSocket
            self.sock.close()
            self._received.put(None)

    def handshake(self) -> str:
        """The opening handshake as it went: the request, then the server's answer."""
        return f"→ sent\n{self.request.strip()}\n\n← received\n{self.response}"

    @property
    def accept_is_right(self) -> bool:
        """Did the server answer our key with the ``Sec-WebSocket-Accept`` the RFC requires?"""
        return self.headers.get("sec-websocket-accept") == accept_key(self.key)

    # Sending: every client frame masked with a fresh random key (§5.3).

    def send_frame(
        self, payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv1: bool = False
    ) -> Capture:
        """Send one frame, masked; returns it as captured."""
        data = encode(payload, opcode, fin=fin, rsv1=rsv1, mask_key=os.urandom(4))
        capture = Capture(CLIENT, decode(data))
        with self._send_lock:
            self.frames.append(capture)
            self.sock.sendall(data)
        return capture

    def send_text(self, text: str, *, compress: bool | None = None) -> Capture:
        """Send a text message in one frame; compressed (RSV1) if ``compress`` (by default, when
        the server accepted permessage-deflate). Uncompressed is allowed either way."""
        data = text.encode()
        compress = self.compressed if compress is None else compress
        if compress and not self.compressed:
            raise ValueError("permessage-deflate was not agreed in the handshake")
        payload = deflate(data, self.client_window_bits) if compress else data
        capture = self.send_frame(payload, 0x1, rsv1=compress)
        capture.data = data
        return capture

    def send_fragmented(self, text: str, parts: int = 3) -> list[Capture]:
        """Send one text message as ``parts`` frames: text (FIN 0), continuation…, last FIN 1."""
        data = text.encode()
        step = -(-len(data) // parts)
        chunks = [data[i : i + step] for i in range(0, len(data), step)]
        sent = []
        for i, chunk in enumerate(chunks):
            opcode = 0x1 if i == 0 else 0x0
            sent.append(self.send_frame(chunk, opcode, fin=i == len(chunks) - 1))
        sent[-1].data = data
        return sent

    def ping(self, payload: bytes = b"are you there?") -> Capture:
        """Send a ping; the server must answer with a pong carrying the same bytes (§5.5.2)."""
        return self.send_frame(payload, 0x9)

    def send_close(self, code: int = 1000, reason: str = "") -> Capture:
        """Start the closing handshake (§5.5.1); read the server's close with :meth:`read`."""
        return self.send_frame(close_payload(code, reason), 0x8)

    # Receiving: server frames are never masked.

    def _read_frames(self, buffer: bytes) -> None:
        """The reader thread: cut the byte stream into frames, in order, until the end."""
        # The server keeps its compression context from message to message (unless
        # server_no_context_takeover was agreed), so one decompressor reads them all, in order.
        inflater = zlib.decompressobj(wbits=-15)
        message: list[bytes] = []
        compressed = False
        try:
            self.sock.settimeout(None)
            while True:
                try:
                    frame = decode(buffer)
                except IncompleteFrame:
                    data = self.sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                    continue
                buffer = buffer[len(frame.raw) :]
                capture = Capture(SERVER, frame)
                if frame.opcode in (0x0, 0x1, 0x2):  # data: gather the message, inflate it
                    if frame.opcode != 0x0:
                        message, compressed = [], frame.rsv1
                    message.append(frame.payload)
                    if frame.fin:
                        whole = b"".join(message)
                        capture.data = (
                            inflater.decompress(whole + DEFLATE_TAIL) if compressed else whole
                        )
                with self._send_lock:
                    self.frames.append(capture)
                self._received.put(capture)
                if frame.opcode == 0x9:  # a ping from the server: answer it at once
                    self.send_frame(frame.payload, 0xA)
        except OSError:
            return
        finally:
            self._ended.set()
            self._received.put(None)  # the end of the stream

    def read(self, timeout: float | None = None) -> Capture:
        """The next frame from the server, exactly as it came."""
        try:
            capture = self._received.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise TimeoutError("no frame from the server in time") from None
        if capture is None:
            self._received.put(None)  # stays ended for the next reader too
            raise ConnectionError("the connection has ended")
        return capture

    def read_until(
        self, wanted: Callable[[Capture], bool], timeout: float | None = None
    ) -> Capture:
        """Read frames (heartbeats and all, kept in :attr:`frames`) until one is ``wanted``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            capture = self.read(max(0.01, deadline - time.monotonic()))
            if wanted(capture):
                return capture

    def read_text(self, containing: str, timeout: float | None = None) -> Capture:
        """Read until a message whose text contains ``containing``."""
        return self.read_until(lambda c: c.text is not None and containing in c.text, timeout)

    def read_opcode(self, opcode: int, timeout: float | None = None) -> Capture:
        """Read until a frame with this opcode (0x8 close, 0xA pong, …)."""
        return self.read_until(lambda c: c.frame.opcode == opcode, timeout)

    def shown(self) -> list[Capture]:
        """:attr:`frames` without the heartbeat events (one a second here)."""
        return [c for c in list(self.frames) if '"type":"heartbeat"' not in (c.text or "")]

    def close(self) -> None:
        """Close the TCP connection (after :meth:`send_close` and the server's close, ideally).

        Once close frames have gone both ways, it first waits (up to a second) for the server to
        close TCP: RFC 6455 §7.1.1 asks the server to close first and the client to wait for it,
        so the server's FIN comes before ours, as a capture then shows."""
        closes = [c.direction for c in list(self.frames) if c.frame.opcode == 0x8]
        if len(set(closes)) == 2:
            self._ended.wait(1.0)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- How a connection ends, as a client library sees it -----------------------------------------


@dataclass
class CloseSeen:
    """How a connection ended, seen from a client: the code, and whether a close frame came."""

    code: int | None
    reason: str
    close_frame_received: bool

    def __repr__(self) -> str:
        meaning = CLOSE_CODES.get(self.code or 0, "")
        head = f"the client sees close code {self.code} ({meaning})"
        if self.reason:
            head += f", reason {self.reason!r}"
        if self.close_frame_received:
            return head + "\n  a close frame with this code came from the server"
        return (
            head + "\n  no close frame arrived: the connection just ended. The client library "
            "reports 1006 itself (RFC 6455 §7.1.5); no peer ever sends it"
        )


def close_seen(ws: Connection, timeout: float = 10.0) -> CloseSeen:
    """Read from a ``websockets`` sync connection until it closes; how it closed."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except (ConnectionClosed, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            return CloseSeen(None, "still open (timed out)", False)
        received = exc.rcvd
        return CloseSeen(
            received.code if received else ws.close_code,
            received.reason if received else "",
            received is not None,
        )
    return CloseSeen(None, "still open (timed out)", False)


@dataclass
class CuttablePath:
    """A TCP relay on 127.0.0.1 standing in for the network between a client and the server:
    connect to :attr:`ws_url` instead of the server, then :meth:`cut` it as a failing NAT box,
    a crashed proxy or a pulled cable would — no close frame from anyone."""

    target_url: str
    _listener: socket.socket = field(init=False, repr=False)
    _sockets: list[socket.socket] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        parts = urlsplit(self.target_url)
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the path was closed
                return
            server = socket.create_connection((parts.hostname, parts.port or 80))
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass an orderly end (FIN) on
        except OSError:
            pass

    def cut(self) -> None:
        """Reset every connection through the path, both ways (TCP RST, no goodbye)."""
        for sock in self._sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)  # wakes the pump blocked in recv()
            except OSError:
                pass
            sock.close()  # with SO_LINGER 0: an RST
        self._sockets.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()
