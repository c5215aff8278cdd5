"""HTTP/2 exercise: read a frame header by hand (RFC 9113 §4.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..h2_wire import frame_header
from . import attempt, report

# Nine-byte headers the check reads, with what each teaches when it goes wrong.
CASES: list[tuple[bytes, str]] = [
    (bytes.fromhex("000012040000000000"), "SETTINGS on stream 0: the connection's own"),
    (bytes.fromhex("00000701050000000b"), "HEADERS with END_STREAM | END_HEADERS on stream 11"),
    (bytes.fromhex("0040000000000000ff"), "DATA of 16,384 bytes: the length is three bytes"),
    (bytes.fromhex("ffffff0001" + "7fffffff"), "the largest length and stream id there are"),
    (bytes.fromhex("0000040800" + "80000003"), "the reserved bit set: it is not the stream's"),
    (bytes.fromhex("0000080601" + "00000000"), "a PING with the ACK flag"),
]


def _expected(header: bytes) -> tuple[int, int, int, int]:
    length, _, flags, stream_id = frame_header(header)
    return length, header[3], flags, stream_id


def check_frame_header(read: Callable[[bytes], Any]) -> bool:
    """``read(header)`` → ``(length, type, flags, stream_id)`` of a 9-byte HTTP/2 frame header,
    all four as ints (the type as its code: 0 DATA, 1 HEADERS, 4 SETTINGS, …)."""
    problems = []
    for header, what in CASES:
        got, error = attempt(read, header)
        if error:
            problems.append(error)
            continue
        expected = _expected(header)
        if not isinstance(got, tuple) or len(got) != 4:
            problems.append(f"read({header.hex(' ')}) gave {got!r}: give a tuple of four ints")
        elif got != expected:
            names = ("length", "type", "flags", "stream_id")
            wrong = [
                f"{name} {value!r} (it is {right})"
                for name, value, right in zip(names, got, expected, strict=True)
                if value != right
            ]
            problems.append(f"{what}: read({header.hex(' ')}) gave " + ", ".join(wrong))
    return report("HTTP/2 frame header", problems)
