"""WebTransport's framing without sockets: lines across reads, the line limit, the close capsule."""

from __future__ import annotations

import pytest

from transport_demo.server.wt_framing import (
    MAX_REASON_BYTES,
    CapsuleReader,
    LineBuffer,
    LineTooLong,
    SessionClose,
    close_capsule,
    encode_line,
)


def test_a_line_split_across_reads_is_put_back_together() -> None:
    lines = LineBuffer(100)
    assert lines.feed(b'{"message":"he') == []
    assert lines.feed(b"llo") == []
    assert lines.feed(b'"}\n{"message"') == [b'{"message":"hello"}']
    assert lines.feed(b':"two"}\n') == [b'{"message":"two"}']
    assert lines.pending == b""


def test_several_lines_in_one_read_come_out_in_order_and_crlf_is_a_newline() -> None:
    assert LineBuffer(100).feed(b"a\nb\r\n\nc\n") == [b"a", b"b", b"", b"c"]


def test_every_split_of_a_stream_gives_the_same_lines() -> None:
    stream = b"".join(encode_line(f'{{"message":"{i}"}}') for i in range(5))
    whole = LineBuffer(64).feed(stream)
    for cut in range(len(stream) + 1):
        lines = LineBuffer(64)
        assert lines.feed(stream[:cut]) + lines.feed(stream[cut:]) == whole


def test_a_line_over_the_limit_is_refused_before_its_newline_arrives() -> None:
    lines = LineBuffer(10)
    assert lines.feed(b"0123456789") == []  # exactly the limit, still waiting for its end
    with pytest.raises(LineTooLong, match="at most 10 bytes"):
        lines.feed(b"x")  # one byte more and no newline: refused without buffering the rest
    assert len(lines.pending) <= 10
    assert LineBuffer(10).feed(b"0123456789\n") == [b"0123456789"]
    with pytest.raises(LineTooLong):
        LineBuffer(10).feed(b"0123456789A\nshort\n")  # complete but too long: refused too


def test_encode_line_keeps_utf8_and_ends_with_one_newline() -> None:
    assert encode_line('{"message":"é"}') == '{"message":"é"}\n'.encode()


def test_the_close_capsule_round_trips_in_any_pieces() -> None:
    capsule = close_capsule(4000, "superseded by a resumed connection")
    for cut in range(len(capsule) + 1):
        reader = CapsuleReader()
        got = reader.feed(capsule[:cut]) + reader.feed(capsule[cut:])
        assert got == [SessionClose(4000, "superseded by a resumed connection")]


def test_capsule_wire_bytes_and_the_reason_limit() -> None:
    # type 0x2843 as a 2-byte varint (0x40 prefix: it is below 2**14), length, code 1000, "bye"
    assert (
        close_capsule(1000, "bye")
        == bytes.fromhex("6843") + bytes([7]) + bytes.fromhex("000003e8") + b"bye"
    )
    long = close_capsule(1001, "é" * 1000)  # 2,000 bytes of UTF-8, cut on a character boundary
    (close,) = CapsuleReader().feed(long)
    assert close.code == 1001 and len(close.reason.encode()) <= MAX_REASON_BYTES
    assert set(close.reason) == {"é"}


def test_unknown_capsules_are_skipped_and_oversized_ones_refused() -> None:
    unknown = bytes([0x01, 0x03]) + b"abc"
    assert CapsuleReader().feed(unknown + close_capsule(1012, "cut")) == [SessionClose(1012, "cut")]
    with pytest.raises(ValueError, match="capsule"):
        CapsuleReader(max_capsule=10).feed(bytes([0x01, 0x40, 0x20]))
