"""WebTransport exercise: read a QUIC variable-length integer by hand (RFC 9000 §16).

QUIC, HTTP/3 and WebTransport write almost every number as one: frame and stream types, lengths,
session ids, capsule types. The two top bits of the first byte say how many bytes it takes (00: 1,
01: 2, 10: 4, 11: 8); the remaining 6, 14, 30 or 62 bits are the value, big-endian. The check's
answers come from aioquic's own reader (``Buffer.pull_uint_var``), not from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# aioquic.buffer re-exports it without saying so (mypy --strict); _buffer is where it lives.
from aioquic._buffer import Buffer

from . import attempt, report

__all__ = ["CASES", "check_varint"]

# Bytes the check reads, with what each teaches when it goes wrong. The first four are RFC 9000
# Appendix A.1's own examples; the last two are the start of bytes this suite's server writes.
CASES: list[tuple[bytes, str]] = [
    (bytes.fromhex("25"), "one byte (top bits 00): the value is the other 6 bits"),
    (bytes.fromhex("7bbd"), "two bytes (top bits 01): RFC 9000 A.1's 15,293"),
    (bytes.fromhex("9d7f3e7d"), "four bytes (top bits 10): RFC 9000 A.1's 494,878,333"),
    (bytes.fromhex("c2197c5eff14e88c"), "eight bytes (top bits 11): RFC 9000 A.1's largest"),
    (bytes.fromhex("4025"), "37 again, in two bytes: longer than needed is allowed (§16)"),
    (
        bytes.fromhex("4041007b2274"),
        "the server's stream begins 40 41 (0x41, WEBTRANSPORT_STREAM): read only the varint",
    ),
    (
        bytes.fromhex("68 43 07 00 00 03 f4 63 75 74"),
        "a close capsule begins with its type, 0x2843: the bytes after it are not yours",
    ),
]


def expected(data: bytes) -> tuple[int, int]:
    """``(value, bytes used)`` of the varint at the start of ``data``, as aioquic reads it."""
    buffer = Buffer(data=data)
    value = buffer.pull_uint_var()
    return value, buffer.tell()


def check_varint(read: Callable[[bytes], Any]) -> bool:
    """``read(data)`` → ``(value, length)``: the QUIC variable-length integer at the start of
    ``data`` and how many bytes it took (1, 2, 4 or 8); ``data`` may go on past it."""
    problems = []
    for data, what in CASES:
        got, error = attempt(read, data)
        if error:
            problems.append(error)
            continue
        right = expected(data)
        if not isinstance(got, tuple) or len(got) != 2:
            problems.append(f"read({data.hex(' ')}) gave {got!r}: give a tuple (value, length)")
        elif got != right:
            problems.append(
                f"{what}: read({data.hex(' ')}) gave {got!r}, it is (value {right[0]:,}, "
                f"length {right[1]})"
            )
    return report("QUIC variable-length integer", problems)
