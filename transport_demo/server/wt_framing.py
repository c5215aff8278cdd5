"""WebTransport's framing, sans I/O: newline-delimited lines on the session's stream, and the
capsule that closes a session with a code and a reason.

A WebTransport stream is a byte stream, like TCP: one read can hold half a line or several lines.
So each side frames its JSON messages as lines (one JSON text, then ``\\n``; JSON text never holds
a raw newline, RFC 8259 §7). :class:`LineBuffer` reassembles them and bounds a line that never
ends: past ``max_line`` bytes without a newline it raises :class:`LineTooLong` at once, before
buffering more (the WebSocket's frame limit, ``max_envelope_bytes``, is the same number).

Closing: a session ends with the ``CLOSE_WEBTRANSPORT_SESSION`` capsule (type ``0x2843``: a 32-bit
application error code and a UTF-8 reason of at most 1,024 bytes) sent in DATA on the session's
CONNECT stream, then the end of that stream (draft-ietf-webtrans-http3 §5; RFC 9297 for capsules).
The codes are the WebSocket's close codes (:class:`~transport_demo.server.protocol.CloseCode`), so
that a client reads "superseded" (4000) or "cut, come back" (1012) the same way on both.

No asyncio, no sockets: bytes in, lines or capsules out (tests/test_wt_framing.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLOSE_SESSION",
    "MAX_REASON_BYTES",
    "CapsuleReader",
    "LineBuffer",
    "LineTooLong",
    "SessionClose",
    "close_capsule",
    "encode_line",
]

CLOSE_SESSION = 0x2843
"""The ``CLOSE_WEBTRANSPORT_SESSION`` capsule type."""
MAX_REASON_BYTES = 1024
"""The longest reason a close capsule may carry."""


class LineTooLong(ValueError):
    """A line grew past the limit without its newline."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"A line may be at most {limit} bytes (the text of a message included).")
        self.limit = limit


class LineBuffer:
    """Bytes in, complete lines out (without their ``\\n``; a ``\\r`` before it is dropped too).

    Invariant: :attr:`pending` never holds more than ``max_line`` bytes; the line it starts is
    incomplete. After :class:`LineTooLong` the buffer is unusable (the stream is out of step: the
    caller ends the session).
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes, in order; raises :class:`LineTooLong`."""
        lines: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            piece = data[start:end]
            if len(self.pending) + len(piece) > self.max_line:
                raise LineTooLong(self.max_line)
            if self.pending:
                self.pending += piece
                line = bytes(self.pending)
                self.pending.clear()
            else:
                line = piece
            lines.append(line[:-1] if line.endswith(b"\r") else line)
            start = end + 1
        rest = len(data) - start
        if len(self.pending) + rest > self.max_line:
            raise LineTooLong(self.max_line)
        self.pending += data[start:]
        return lines


def encode_line(text: str) -> bytes:
    """One JSON text as a line: UTF-8 and ``\\n`` (JSON escapes any newline inside strings)."""
    return text.encode() + b"\n"


def _varint(value: int) -> bytes:
    """QUIC's variable-length integer (RFC 9000 §16)."""
    if value < 1 << 6:
        return value.to_bytes(1, "big")
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x8000_0000).to_bytes(4, "big")
    if value < 1 << 62:
        return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")
    raise ValueError("too large for a QUIC varint")


def close_capsule(code: int, reason: str) -> bytes:
    """The ``CLOSE_WEBTRANSPORT_SESSION`` capsule for ``code`` and ``reason`` (cut to 1,024 bytes
    on a character boundary)."""
    raw = reason.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode()
    value = code.to_bytes(4, "big") + raw
    return _varint(CLOSE_SESSION) + _varint(len(value)) + value


@dataclass(frozen=True, slots=True)
class SessionClose:
    """A received ``CLOSE_WEBTRANSPORT_SESSION``."""

    code: int
    reason: str


class CapsuleReader:
    """The capsules of a CONNECT stream's data, as it arrives in pieces; only the close capsule is
    kept (others are skipped, as the capsule protocol asks of unknown types). A capsule longer
    than ``max_capsule`` bytes is refused with :class:`ValueError`."""

    def __init__(self, max_capsule: int = 4 + MAX_REASON_BYTES) -> None:
        self.max_capsule = max_capsule
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[SessionClose]:
        """The close capsules ``data`` completes."""
        self._buffer += data
        closes: list[SessionClose] = []
        while True:
            header = _read_varints(self._buffer, 2)
            if header is None:
                return closes
            (kind, length), used = header
            if length > self.max_capsule:
                raise ValueError(f"a capsule of {length} bytes is more than this reader takes")
            if len(self._buffer) < used + length:
                return closes
            value = bytes(self._buffer[used : used + length])
            del self._buffer[: used + length]
            if kind == CLOSE_SESSION and length >= 4:
                reason = value[4:].decode("utf-8", "replace")
                closes.append(SessionClose(int.from_bytes(value[:4], "big"), reason))


def _read_varints(buffer: bytearray, count: int) -> tuple[list[int], int] | None:
    values: list[int] = []
    at = 0
    for _ in range(count):
        if at >= len(buffer):
            return None
        size = 1 << (buffer[at] >> 6)
        if at + size > len(buffer):
            return None
        value = int.from_bytes(buffer[at : at + size], "big") & ((1 << (8 * size - 2)) - 1)
        values.append(value)
        at += size
    return values, at
