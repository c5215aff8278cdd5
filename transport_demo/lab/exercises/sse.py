"""SSE exercises: parse an event stream by hand, build a resume point, and decide what a browser's
``EventSource`` does with an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import attempt, report

# Examples after the WHATWG HTML standard's "Server-sent events" section (§9.2): multi-line data,
# comments, an id without data, a retry field, CRLF line ends, and a field without a space.
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
]


def check_sse_parser(parse: Callable[[str], list[dict[str, Any]]]) -> bool:
    """``parse(text)`` → one dict per block (a blank line ends a block) that set any field:
    ``data`` (its lines joined with ``\\n``), ``id``, ``event``, ``retry`` (an int). Comments
    (``:``) are ignored; an unfinished last block is dropped; CRLF ends lines too. (A browser fires
    ``message`` only for blocks with data; an ``id`` alone still becomes its Last-Event-ID.)"""
    problems = []
    for text, expected in PARSER_CASES:
        got, error = attempt(parse, text)
        if error:
            problems.append(error)
        elif got != expected:
            problems.append(f"parse({text!r}) gave {got!r}, expected {expected!r}")
    return report("SSE parser", problems)


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
