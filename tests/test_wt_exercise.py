"""Notebook 07's exercise check: a QUIC variable-length integer read by hand. The solution
passes; the classic mistakes fail, each with the reason a student reads; an answer that raises is
a problem shown, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from transport_demo.lab.exercises import webtransport
from transport_demo.lab.exercises.webtransport import CASES, check_varint, expected
from transport_demo.server.wt_framing import CLOSE_SESSION, close_capsule

SOLUTION = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "quic_varint.py"


def solution() -> Any:
    namespace: dict[str, Any] = {"check_varint": lambda read: None}
    exec(compile(SOLUTION.read_text(), SOLUTION.name, "exec"), namespace)
    return namespace["read"]


def verdict(answer: Any, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    passed = check_varint(answer)
    printed = capsys.readouterr().out
    assert ("pass!" in printed) is passed and ("not yet" in printed) is not passed
    return passed, printed


def test_the_solution_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict(solution(), capsys)[0]


def test_the_cases_are_rfc_9000s_examples_and_the_servers_bytes() -> None:
    # RFC 9000 Appendix A.1, "Sample Variable-Length Integer Decoding"
    assert [expected(data) for data, _ in CASES[:4]] == [
        (37, 1),
        (15_293, 2),
        (494_878_333, 4),
        (151_288_809_941_952_652, 8),
    ]
    # what the server writes: a close capsule starts with its type, 0x2843
    assert close_capsule(1012, "cut").startswith(CASES[-1][0][:2])
    assert expected(CASES[-1][0]) == (CLOSE_SESSION, 2)


def keeps_the_length_bits(data: bytes) -> tuple[int, int]:
    length = 1 << (data[0] >> 6)
    return int.from_bytes(data[:length], "big"), length


def reads_everything(data: bytes) -> tuple[int, int]:
    length = 1 << (data[0] >> 6)
    value = int.from_bytes(data, "big") & ((1 << (8 * len(data) - 2)) - 1)
    return value, length


def little_endian(data: bytes) -> tuple[int, int]:
    length = 1 << (data[0] >> 6)
    return int.from_bytes(data[:length], "little") & ((1 << (8 * length - 2)) - 1), length


def value_only(data: bytes) -> int:
    value, _ = solution()(data)
    return int(value)


def length_in_bits(data: bytes) -> tuple[int, int]:
    value, length = solution()(data)
    return value, 8 * length


def raises(data: bytes) -> tuple[int, int]:
    raise ValueError("not done")


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        (keeps_the_length_bits, "RFC 9000 A.1's 15,293"),
        (reads_everything, "read only the varint"),
        (little_endian, "four bytes (top bits 10)"),
        (value_only, "give a tuple (value, length)"),
        (length_in_bits, "length 2)"),
        (raises, "raised ValueError: not done"),
    ],
    ids=lambda x: getattr(x, "__name__", "reason"),
)
def test_wrong_answers_fail_with_their_reason(
    wrong: Any, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    passed, printed = verdict(wrong, capsys)
    assert not passed and reason in printed


def test_the_module_exports_its_check() -> None:
    assert "check_varint" in webtransport.__all__
