"""Each long-polling and SSE exercise check passes a right answer and fails wrong ones — including
the classic mistakes — and never crashes on an answer that raises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from transport_demo.lab.exercises import longpoll, sse

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"


def solution(name: str, function: str) -> Callable[..., Any]:
    """The function a solution file defines (its check call is left out)."""
    namespace: dict[str, Any] = {}
    source = (SOLUTIONS / name).read_text()
    exec(compile(source.rsplit("\ncheck_", 1)[0], name, "exec"), namespace)
    return namespace[function]  # type: ignore[no-any-return]


def verdict(check: Callable[[Any], bool], answer: Any, capsys: pytest.CaptureFixture[str]) -> bool:
    passed = check(answer)
    printed = capsys.readouterr().out
    assert ("pass!" in printed) is passed and ("not yet" in printed) is not passed
    return passed


def raises(*args: Any) -> Any:
    raise ValueError("not done")


# -- long polling: the next poll's body --------------------------------------------------------


def test_next_poll_body_right(capsys: pytest.CaptureFixture[str]) -> None:
    right = solution("lp_next_poll_body.py", "next_poll_body")
    assert verdict(longpoll.check_next_poll_body, right, capsys)
    assert right("c", [1, 2, 4]) == {"connection_id": "c", "last_seq": 2}


@pytest.mark.parametrize(
    "wrong",
    [
        lambda cid, seqs: {"connection_id": cid, "last_seq": max(seqs, default=0)},  # the old bug
        lambda cid, seqs: {"connection_id": cid, "last_seq": len(seqs)},  # counts duplicates
        lambda cid, seqs: {"connection_id": cid, "last_seq": seqs[-1] if seqs else 0},  # order
        lambda cid, seqs: {"connection_id": cid, "last_seq": len(set(seqs))},  # ignores holes
        lambda cid, seqs: {"connection_id": cid},
        lambda cid, seqs: {"last_seq": 0},
        lambda cid, seqs: {},  # the notebook's stub
        raises,
    ],
    ids=["max", "len", "last", "distinct", "no-seq", "no-id", "stub", "raises"],
)
def test_next_poll_body_wrong(wrong: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert not verdict(longpoll.check_next_poll_body, wrong, capsys)


def test_next_poll_body_refuses_a_text(capsys: pytest.CaptureFixture[str]) -> None:
    right = solution("lp_next_poll_body.py", "next_poll_body")
    with_text = lambda cid, seqs: {**right(cid, seqs), "text": ""}  # noqa: E731
    assert not verdict(longpoll.check_next_poll_body, with_text, capsys)


# -- long polling: duplicates and gaps -----------------------------------------------------------


def test_dedupe_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict(longpoll.check_dedupe, solution("lp_dedupe.py", "accept"), capsys)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda last, incoming: (incoming, 0, 0),  # the notebook's stub
        lambda last, incoming: (sorted(set(incoming)), 0, 0),  # no counting
        lambda last, incoming: ([s for s in incoming if s > last], 0, 0),  # keeps repeats
        raises,
    ],
    ids=["stub", "set", "filter-only", "raises"],
)
def test_dedupe_wrong(wrong: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert not verdict(longpoll.check_dedupe, wrong, capsys)


# -- SSE: the parser -----------------------------------------------------------------------------


def test_parser_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict(sse.check_sse_parser, solution("sse_parser.py", "parse"), capsys)


def naive_parse(text: str) -> list[dict[str, Any]]:
    """Splits on blank lines and ': ' — the parser everyone writes first."""
    events = []
    for block in text.split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                event[name] = value
        if event:
            events.append(event)
    return events


@pytest.mark.parametrize(
    "wrong", [naive_parse, lambda text: [], raises], ids=["naive", "stub", "raises"]
)
def test_parser_wrong(wrong: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert not verdict(sse.check_sse_parser, wrong, capsys)


# -- SSE: the resume point -----------------------------------------------------------------------


def test_last_event_id_right(capsys: pytest.CaptureFixture[str]) -> None:
    right = solution("sse_last_event_id.py", "last_event_id")
    assert verdict(sse.check_last_event_id, right, capsys)


@pytest.mark.parametrize(
    "wrong",
    [lambda cid, seq: "", lambda cid, seq: str(seq), lambda cid, seq: f"{cid}/{seq}", raises],
    ids=["stub", "seq-only", "slash", "raises"],
)
def test_last_event_id_wrong(wrong: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert not verdict(sse.check_last_event_id, wrong, capsys)


# -- SSE: what EventSource does with an answer ----------------------------------------------------


def test_eventsource_reaction_right(capsys: pytest.CaptureFixture[str]) -> None:
    right = solution("sse_reconnect_or_give_up.py", "reaction")
    assert verdict(sse.check_eventsource_reaction, right, capsys)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda status, ctype: "reconnect",  # a browser never gives up: wrong
        lambda status, ctype: "give up" if status == 204 else "reconnect",  # only 204 stops it
        lambda status, ctype: "reconnect" if status in (None, 200) else "give up",  # type ignored
        lambda status, ctype: "reconnect" if ctype == "text/event-stream" else "give up",
        raises,
    ],
    ids=["always", "only-204", "status-only", "exact-type", "raises"],
)
def test_eventsource_reaction_wrong(wrong: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert not verdict(sse.check_eventsource_reaction, wrong, capsys)
