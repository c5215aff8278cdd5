"""Each long-polling and SSE exercise check passes a right answer and fails wrong ones — including
the classic mistakes, each with the reason a student reads — and never crashes on an answer that
raises."""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from transport_demo.lab import eventsource
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


# -- SSE: the parser, fed the body in chunks as a network cuts it -------------------------------


def test_parser_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict(sse.check_sse_parser, solution("sse_parser.py", "parse"), capsys)


def test_the_check_expects_what_the_suites_own_parser_gives() -> None:
    for text, expected in sse.PARSER_CASES:
        assert eventsource.blocks(text) == expected, text
        stream = text.encode()
        assert sse.completed_by([stream]) == [1] * len(expected)


def test_the_splits_are_seeded_and_cut_where_networks_do() -> None:
    stream = "data: é\r\n\r\n".encode()
    splits = list(sse.splits(stream))
    assert splits == list(sse.splits(stream))  # the same on every run
    assert all(b"".join(chunks) == stream for chunks in splits)
    assert [b"data: \xc3", b"\xa9\r\n\r\n"] in splits
    assert [b"data: \xc3\xa9\r", b"\n\r\n"] in splits
    assert sse.describe_cut(stream, 7) == "inside the 2-byte character 'é'"
    assert sse.describe_cut(stream, 9) == "between \\r and \\n"
    assert sse.describe_cut(stream, 3) == "inside a line"
    assert len(splits) == 1 + (len(stream) - 1) + sse.RANDOM_SPLITS + 1


def blocks_of(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The solution's handling of complete lines: the wrong parsers below differ from it only in
    how they cut the bytes into lines."""
    block: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                block["data"] = "\n".join(data)
            if block:
                yield block
            block, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("id", "event"):
                block[name] = value
            elif name == "retry" and value.isascii() and value.isdigit():
                block["retry"] = int(value)


LINE_END = r"\r\n|\r|\n"


def decodes_each_chunk(chunks: Iterable[bytes], errors: str = "strict") -> Iterator[dict[str, Any]]:
    """Right, except that it decodes each chunk on its own: a character cut in two raises (or,
    with ``errors="replace"``, each half becomes U+FFFD)."""

    def lines() -> Iterator[str]:
        pending, after_cr = "", False
        for chunk in chunks:
            text = chunk.decode(errors=errors)
            if text:
                text = text[1:] if after_cr and text.startswith("\n") else text
                after_cr = text.endswith("\r")
            *done, pending = re.split(LINE_END, pending + text)
            yield from done

    return blocks_of(lines())


def cr_then_lf_twice(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Right, except that a CR at the end of one chunk and a LF at the start of the next make two
    line ends (the second a blank line that dispatches too early)."""

    def lines() -> Iterator[str]:
        decoder, pending = codecs.getincrementaldecoder("utf-8")(), ""
        for chunk in chunks:
            *done, pending = re.split(LINE_END, pending + decoder.decode(chunk))
            yield from done

    return blocks_of(lines())


def lf_only(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Right, except that only LF ends a line (a CR before it is stripped): a CR alone is not a
    line end, and a CRLF's line ends only when its LF arrives."""

    def lines() -> Iterator[str]:
        decoder, pending = codecs.getincrementaldecoder("utf-8")(), ""
        for chunk in chunks:
            *done, pending = (pending + decoder.decode(chunk)).split("\n")
            yield from (line.removesuffix("\r") for line in done)

    return blocks_of(lines())


def whole_body_first(chunks: Iterable[bytes]) -> list[dict[str, Any]]:
    """Right events, but only once the whole body has arrived, which a stream may never do."""
    return list(blocks_of(re.split(LINE_END, b"".join(chunks).decode())[:-1]))


def waits_after_cr(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Waits at a CR for the next chunk to see whether a LF follows: right events, late."""

    def lines() -> Iterator[str]:
        decoder, pending = codecs.getincrementaldecoder("utf-8")(), ""
        for chunk in chunks:
            *done, pending = re.split(r"\r\n|\r(?!$)|\n", pending + decoder.decode(chunk))
            yield from done

    return blocks_of(lines())


def naive_parse(chunks: Iterable[bytes]) -> list[dict[str, Any]]:
    """Splits on blank lines and ': ' — the parser everyone writes first."""
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                event[name] = value
        if event:
            events.append(event)
    return events


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        (decodes_each_chunk, "(cut inside the 2-byte character 'é') raised UnicodeDecodeError"),
        (
            functools.partial(decodes_each_chunk, errors="replace"),
            "(cut inside the 2-byte character 'é') gave [{'event': 'caf\ufffd\ufffd'",
        ),
        (cr_then_lf_twice, "(cut between \\r and \\n) gave [{'retry': 1000}, {'data': 'x'}, {'id'"),
        (lf_only, "(the whole stream, one chunk) gave [], expected [{'data': 'one\\ntwo'}"),
        (whole_body_first, "parse returned a list, so event 1 came out only after all 2 chunks"),
        (
            waits_after_cr,
            "came out only after chunk 2 was read, though chunk 1 completed it (the CR",
        ),
        (naive_parse, "(the whole stream, one chunk) gave [{'retry': '1000'}"),
        (lambda chunks: [], "(the whole stream, one chunk) gave [], expected"),  # the stub
        (raises, "raised ValueError: not done"),
    ],
    ids=[
        "decodes-each-chunk",
        "decodes-each-chunk-replacing",
        "cr-then-lf-twice",
        "lf-only",
        "whole-body-first",
        "waits-after-cr",
        "naive",
        "stub",
        "raises",
    ],
)
def test_parser_wrong(wrong: Any, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    passed = sse.check_sse_parser(wrong)
    printed = capsys.readouterr().out
    assert not passed and "not yet" in printed
    assert reason in printed, printed


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
