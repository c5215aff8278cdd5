"""SSE exercises: parse an event stream by hand, as the network delivers it, build a resume point,
and decide what a browser's ``EventSource`` does with an answer."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..eventsource import blocks
from . import attempt, report

# Examples after the WHATWG HTML standard's "Server-sent events" section (§9.2): multi-line data,
# comments, an id without data, a retry field, CRLF line ends, and a field without a space; then
# CR alone as a line end, and characters of two, three and four bytes in UTF-8 (§9.2.6: the body
# is decoded as UTF-8, and CRLF, LF and CR each end a line).
PARSER_CASES: list[tuple[str, list[dict[str, Any]]]] = [
    ("data: YHOO\ndata: +2\ndata: 10\n\n", [{"data": "YHOO\n+2\n10"}]),
    (
        ": test stream\n\ndata: first event\nid: 1\n\n"
        "data:second event\nid\n\ndata:  third event\n\n",
        [
            {"data": "first event", "id": "1"},
            {"data": "second event", "id": ""},
            {"data": " third event"},
        ],
    ),
    ("retry: 1000\n\ndata: x\r\nid: c:7\r\n\r\n", [{"retry": 1000}, {"data": "x", "id": "c:7"}]),
    ("id: only-an-id\n\n", [{"id": "only-an-id"}]),
    ("event: add\ndata: 73857293\n\n", [{"event": "add", "data": "73857293"}]),
    ("data\n\ndata\ndata\n\ndata:\n", [{"data": ""}, {"data": "\n"}]),
    ("data: one\rdata: two\r\rid: 2\r\r", [{"data": "one\ntwo"}, {"id": "2"}]),
    ("event: café\r\ndata: 5 € ☕\r\ndata: 🙂\r\n\r\n", [{"event": "café", "data": "5 € ☕\n🙂"}]),
]

# The splits are random but the same on every run (seeded), so a failure can be tried again.
SPLIT_SEED = 22
RANDOM_SPLITS = 20


def splits(stream: bytes, seed: int = SPLIT_SEED) -> Iterator[list[bytes]]:
    """The ways the check cuts ``stream`` into chunks, simplest first: whole; in two at every
    offset (so inside every line, inside every multi-byte character, between every CR and LF);
    at ``RANDOM_SPLITS`` sets of random offsets drawn from ``random.Random(seed)``; byte by byte."""
    yield [stream]
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]
    rng = random.Random(seed)
    for _ in range(RANDOM_SPLITS):
        count = rng.randint(2, max(2, len(stream) // 4))
        cuts = sorted(rng.sample(range(1, len(stream)), min(count, len(stream) - 1)))
        yield [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    yield [stream[i : i + 1] for i in range(len(stream))]


def describe_cut(stream: bytes, offset: int) -> str:
    """Where a cut at ``offset`` falls: inside a character, between CR and LF, or elsewhere."""
    if stream[offset] & 0xC0 == 0x80:  # a UTF-8 continuation byte: the character is cut
        start = offset - 1
        while start > 0 and stream[start] & 0xC0 == 0x80:
            start -= 1
        character = stream[start:].decode(errors="ignore")[0]
        return f"inside the {len(character.encode())}-byte character {character!r}"
    if stream[offset - 1 : offset + 1] == b"\r\n":
        return "between \\r and \\n"
    if stream[offset - 1] in b"\r\n":
        return "just after a line end"
    return "inside a line"


def completed_by(chunks: list[bytes]) -> list[int]:
    """For each block of the stream, the number of the chunk that completed it: a parser has the
    block as soon as it has read that chunk. Found with the suite's own §9.2.6 parser
    (:func:`~transport_demo.lab.eventsource.blocks`) on each prefix of the stream."""
    numbers: list[int] = []
    for number in range(1, len(chunks) + 1):
        prefix = b"".join(chunks[:number]).decode(errors="ignore")  # drops a cut last character
        numbers += [number] * (len(blocks(prefix)) - len(numbers))
    return numbers


def _feed(
    parse: Callable[[Iterable[bytes]], Iterable[dict[str, Any]]], chunks: list[bytes]
) -> tuple[list[tuple[Any, int]], str | None, str | None]:
    """Run ``parse`` on ``chunks`` as a network would hand them over. Returns each event it gave,
    with how many chunks it had taken by then; the type of its answer when that is not an
    iterator (a generator is one; a list is not); and the exception it raised, if any."""
    taken = 0

    def network() -> Iterator[bytes]:
        nonlocal taken
        for chunk in chunks:
            taken += 1
            yield chunk

    got: list[tuple[Any, int]] = []
    not_streaming = None
    try:
        answer = parse(network())
        if not isinstance(answer, Iterator):
            not_streaming = type(answer).__name__
        for event in answer:
            got.append((event, taken))
    except Exception as exc:
        return got, not_streaming, f"raised {type(exc).__name__}: {exc}"
    return got, not_streaming, None


def _try(
    parse: Callable[[Iterable[bytes]], Iterable[dict[str, Any]]],
    chunks: list[bytes],
    expected: list[dict[str, Any]],
) -> tuple[int, str] | None:
    """What is wrong with ``parse`` on this split, said with the call that shows it, and its rank
    (0: it raised or gave the wrong events; 1: the right events, late; 2: late because it is
    not a generator); or None."""
    got, not_streaming, error = _feed(parse, chunks)
    stream = b"".join(chunks)
    cuts = {describe_cut(stream, sum(map(len, chunks[:i]))) for i in range(1, len(chunks))}
    cut = f"cut {', '.join(sorted(cuts, key=_notable))}" if cuts else "the whole stream, one chunk"
    call = f"list(parse({chunks!r})) ({cut})"
    if error:
        return 0, f"{call} {error}"
    if [event for event, _ in got] != expected:
        return 0, f"{call} gave {[event for event, _ in got]!r}, expected {expected!r}"
    for number, ((_, taken), complete) in enumerate(zip(got, completed_by(chunks), strict=True), 1):
        if taken <= complete:
            continue
        if not_streaming:
            return 2, (
                f"{call}: parse returned a {not_streaming}, so event {number} came out only "
                f"after all {len(chunks)} chunks were read, though chunk {complete} completed it. "
                "A stream may never end: make parse a generator that yields each event as soon "
                "as its blank line has arrived."
            )
        why = (
            f" (the CR at the end of chunk {complete} ends its line: a LF may follow, or nothing "
            "for minutes)"
            if chunks[complete - 1].endswith(b"\r")
            else ""
        )
        return 1, (
            f"{call}: event {number} came out only after chunk {taken} was read, though chunk "
            f"{complete} completed it{why}. Yield each event as soon as its blank line has "
            "arrived."
        )
    return None


def _notable(where: str) -> int:
    """Order the kinds of cut so that the one that most likely broke a parser comes first."""
    order = ("inside the", "between", "inside a line", "just after")
    return next(i for i, start in enumerate(order) if where.startswith(start))


def check_sse_parser(parse: Callable[[Iterable[bytes]], Iterable[dict[str, Any]]]) -> bool:
    """``parse(chunks)`` takes the body as the network delivers it — an iterable of ``bytes``
    chunks cut anywhere, even inside a UTF-8 character or between a CR and its LF — and yields
    one dict per block (a blank line ends a block) that set any field: ``data`` (its lines joined
    with ``\\n``), ``id``, ``event``, ``retry`` (an int), each as soon as its blank line has
    arrived. Comments (``:``) are ignored; an unfinished last block is dropped; CRLF, LF and CR
    each end a line. (A browser fires ``message`` only for blocks with data; an ``id`` alone
    still becomes its Last-Event-ID.)

    Each example is fed whole, then cut in two at every offset, at seeded random offsets, and
    byte by byte; for each example the first split that breaks the parser is shown, ready to run
    again (wrong events before late ones)."""
    problems = []
    for text, expected in PARSER_CASES:
        for chunks in splits(text.encode()):
            problem = _try(parse, chunks, expected)
            if problem:
                problems.append(problem)
                break
    problems.sort(key=lambda problem: problem[0])
    if problems and problems[-1][0] == 2:  # not a generator: say so once
        problems = [p for p in problems if p[0] < 2] + [next(p for p in problems if p[0] == 2)]
    return report("SSE parser", [problem for _, problem in problems])


def check_last_event_id(last_event_id: Callable[[str, int], str]) -> bool:
    """``last_event_id(connection_id, last_seq)`` → the ``Last-Event-ID`` header that resumes."""
    problems = []
    for cid, seq in [("05b8925d-9762-4269-a6c0-87a34fe06bea", 4), ("abc", 0)]:
        got, error = attempt(last_event_id, cid, seq)
        if error:
            problems.append(error)
        elif got != f"{cid}:{seq}":
            problems.append(f"for {cid!r} after seq {seq} it gave {got!r}")
    return report("Last-Event-ID", problems)


# (status, Content-Type) of the answer to an EventSource's request, or (None, None) for a network
# error (refused, reset, cut), and what the browser does when that connection is over: WHATWG HTML
# §9.2.2, the fetch steps of the EventSource constructor. Only 200 with text/event-stream is a
# stream (it reconnects when it ends); any other status or type fails the connection for good.
EVENTSOURCE_CASES: list[tuple[int | None, str | None, str]] = [
    (200, "text/event-stream", "reconnect"),
    (None, None, "reconnect"),
    (204, None, "give up"),
    (200, "text/event-stream; charset=utf-8", "reconnect"),
    (200, "application/json", "give up"),
    (401, "application/json", "give up"),
    (404, "text/html", "give up"),
    (500, "text/event-stream", "give up"),
    (502, "text/html", "give up"),
    (503, "text/event-stream", "give up"),
]


def check_eventsource_reaction(reaction: Callable[[int | None, str | None], str]) -> bool:
    """``reaction(status, content_type)`` → ``"reconnect"`` or ``"give up"``: what a browser's
    ``EventSource`` does once a connection that got this answer is over. ``status`` is ``None``
    for a network error (no answer at all). Parameters such as ``; charset=utf-8`` don't change
    the type. (WHATWG HTML §9.2.2 and §9.2.3.)"""
    problems = []
    for status, content_type, expected in EVENTSOURCE_CASES:
        got, error = attempt(reaction, status, content_type)
        if error:
            problems.append(error)
        elif str(got).strip().lower() != expected:
            answer = "a network error" if status is None else f"{status} {content_type or ''}"
            problems.append(f"after {answer.strip()} it said {got!r}")
    return report("EventSource reaction", problems)
