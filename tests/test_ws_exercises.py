"""The WebSocket exercise checks: each fails a wrong answer (printing why, never raising) and passes
a right one."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from transport_demo import RunningServer
from transport_demo.lab import ws_wire
from transport_demo.lab.exercises.websocket import (
    CLOSE_DECISIONS,
    FRAME_TO_DECODE,
    check_accept,
    check_close_decisions,
    check_decoded,
    check_message,
)


def verdict(capsys: pytest.CaptureFixture[str], passed: bool) -> str:
    printed = capsys.readouterr().out
    assert ("pass!" in printed) == passed and ("not yet" in printed) == (not passed)
    return printed


def test_frame_check(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert not check_message(lambda text: text, server.url)  # not JSON: the server says so
    assert "for 'hello' the server said invalid_json" in verdict(capsys, False)
    naive = '{{"message": "{}"}}'.format  # breaks on quotes and newlines
    assert not check_message(naive, server.url)
    printed = verdict(capsys, False)
    assert "for 'hello'" not in printed and "line\\nbreak" in printed
    assert check_message(lambda text: json.dumps({"message": text}), server.url)
    verdict(capsys, True)


def test_accept_check(capsys: pytest.CaptureFixture[str]) -> None:
    guid = ws_wire.GUID

    def as_hex(key: str) -> str:
        return hashlib.sha1((key + guid).encode()).hexdigest()

    def only_the_sample(key: str) -> str:
        return "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def as_bytes(key: str) -> bytes:
        return base64.b64encode(hashlib.sha1((key + guid).encode()).digest())

    def decodes_the_key(key: str) -> str:
        digest = hashlib.sha1((base64.b64decode(key).hex() + guid).encode()).digest()
        return base64.b64encode(digest).decode()

    def raises(key: str) -> str:
        raise RuntimeError("not written yet")

    wrongs: list[tuple[Callable[[str], Any], str]] = [
        (as_hex, "looks like hex"),
        (only_the_sample, "accept('x3JJHMbDL1EzLkh9GBhXDw==') gave 's3pP"),
        (as_bytes, "gave bytes"),
        (decodes_the_key, "exactly as it came"),
        (raises, "raised RuntimeError"),
    ]
    for wrong, hint in wrongs:
        assert check_accept(wrong) is False
        assert hint in verdict(capsys, False)
    assert check_accept(ws_wire.accept_key)
    verdict(capsys, True)


RIGHT_DECODING: dict[str, Any] = {
    "fin": True,
    "opcode": 1,
    "masked": True,
    "length": 11,
    "mask_key": bytes.fromhex("5e1fa207"),
    "text": "Bonjour ✓",
}


def test_the_frame_to_decode_is_what_the_answer_says() -> None:
    frame = ws_wire.decode(FRAME_TO_DECODE)
    assert len(frame.raw) == len(FRAME_TO_DECODE)
    assert {
        "fin": frame.fin,
        "opcode": frame.opcode,
        "masked": frame.masked,
        "length": frame.length,
        "mask_key": frame.mask_key,
        "text": frame.payload.decode(),
    } == RIGHT_DECODING


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"length": 9}, "in bytes (not characters)"),
        ({"opcode": 0x81}, "low 4 bits of byte 0"),
        ({"fin": 1}, "FIN is the top bit"),
        ({"mask_key": "5e1fa207"}, "the 4 bytes right after"),
        ({"text": "\x1cp\xccm1j\xd0'\xbc\x831"}, "unmask"),
        ({"masked": False}, "MASK is the top bit"),
    ],
)
def test_decoded_check_fails_each_wrong_field(
    change: dict[str, Any], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_decoded({**RIGHT_DECODING, **change}) is False
    assert hint in verdict(capsys, False)


def test_decoded_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_decoded({}) is False
    assert "'fin' is missing" in verdict(capsys, False)
    assert check_decoded("81 8b ...") is False  # type: ignore[arg-type]
    verdict(capsys, False)
    assert check_decoded(dict(RIGHT_DECODING))
    verdict(capsys, True)


def test_close_decisions_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_close_decisions({code: "reconnect" for code in CLOSE_DECISIONS}) is False
    assert "1000: not 'reconnect'" in verdict(capsys, False)
    assert check_close_decisions({**CLOSE_DECISIONS, 1006: "give up"}) is False
    assert "1006" in verdict(capsys, False)
    assert check_close_decisions({**CLOSE_DECISIONS, 1012: "maybe"}) is False
    assert "not one of reconnect, back off, give up" in verdict(capsys, False)
    missing = {k: v for k, v in CLOSE_DECISIONS.items() if k != 1011}
    assert check_close_decisions(missing) is False
    assert "1011 is missing" in verdict(capsys, False)
    assert check_close_decisions(None) is False  # type: ignore[arg-type]
    verdict(capsys, False)
    assert check_close_decisions({k: f" {v.upper()} " for k, v in CLOSE_DECISIONS.items()})
    verdict(capsys, True)
