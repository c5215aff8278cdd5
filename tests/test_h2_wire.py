"""The HTTP/2 wire instrument (transport_demo.lab.h2_wire) against a real --https server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from transport_demo import RunningServer
from transport_demo.lab.h2_wire import frame_header, frames, h2_exchange, http1_request_head


def test_frame_header_is_rfc_9113_section_4_1() -> None:
    # length 0x00000c, type HEADERS, flags END_STREAM|END_HEADERS, reserved bit set, stream 3
    assert frame_header(bytes.fromhex("00000c0105") + (0x8000_0003).to_bytes(4, "big")) == (
        12,
        "HEADERS",
        0x05,
        3,
    )
    settings = bytes.fromhex("000000040000000000")
    assert [repr(f) for f in frames(settings, "server")] == [
        "server SETTINGS      stream 0  0 bytes"
    ]
    with pytest.raises(ValueError, match="9 bytes"):
        frame_header(b"\x00" * 8)


def test_hpack_shrinks_a_long_polls_headers(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(https=True)
    context = server.ssl_context()
    opened = h2_exchange(server.url, [("POST", "/poll", None)], verify=context)
    assert opened.alpn == "h2"
    connection_id = opened.answers[0]["body"]["connection_id"]
    body = {"connection_id": connection_id, "last_seq": 0}
    polls = h2_exchange(server.url, [("POST", "/poll", body)] * 3, verify=context)
    assert [answer["status"] for answer in polls.answers] == [200, 200, 200]
    first, *later = polls.request_header_bytes
    assert all(size <= 10 for size in later) and first >= 40  # indexes into the dynamic table
    assert [f.stream_id for f in polls.frames if f.kind == "HEADERS" and f.sender == "client"] == [
        1,
        3,
        5,
    ]
    head = http1_request_head("POST", "/poll", "127.0.0.1:8000", b"{}")
    assert head.startswith(b"POST /poll HTTP/1.1\r\nHost: ") and len(head) > first
