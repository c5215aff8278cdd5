"""Long-polling exercises: the resume point, and duplicates and gaps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import attempt, report

# (connection_id, seqs received so far in the order they came, the last_seq to send). The
# acknowledgement is cumulative, like TCP's: "everything up to here". With a hole, only the part
# before the hole is acknowledged, or the missing seq would never be sent again.
NEXT_POLL_CASES: list[tuple[str, list[int], int]] = [
    ("abc", [1, 2, 3], 3),
    ("abc", [], 0),
    ("xyz", [1, 2, 3, 4, 5, 6, 7], 7),
    ("abc", [1, 2, 4], 2),
    ("abc", [2, 3], 0),
    ("abc", [1, 2, 4, 5, 6], 2),
    ("abc", [3, 1, 2], 3),
    ("abc", [1, 1, 2, 2], 2),
    ("abc", [1, 2, 3, 5, 4], 5),
]


def check_next_poll_body(next_poll_body: Callable[[str, list[int]], dict[str, Any]]) -> bool:
    """``next_poll_body(connection_id, seqs_received)`` → the body of the next ``POST /poll``.

    ``seqs_received`` is every seq received so far, in the order they came (a redelivery can
    repeat one). ``last_seq`` must acknowledge the highest seq *up to which nothing is missing*:
    with ``[1, 2, 4]`` that is 2, so that 3 is sent again; ``max()`` would acknowledge 3 too and
    lose it for good."""
    problems = []
    for cid, seqs, expected in NEXT_POLL_CASES:
        body, error = attempt(next_poll_body, cid, list(seqs))
        if error:
            problems.append(error)
            continue
        if not isinstance(body, dict):
            problems.append(f"for {seqs} it returned {body!r}, not a dict")
        elif body.get("connection_id") != cid:
            problems.append(f"the body must name the connection: {body!r}")
        elif body.get("last_seq") != expected:
            hole = bool(seqs) and expected < max(seqs)
            hint = " (a seq is missing: acknowledge only up to the hole)" if hole else ""
            problems.append(f"after receiving {seqs} last_seq should be {expected}{hint}: {body!r}")
        elif "text" in body:
            problems.append("a poll has no text (a text would queue a message)")
    return report("next poll body", problems)


def check_dedupe(accept: Callable[[int, list[int]], tuple[list[int], int, int]]) -> bool:
    """``accept(last_seq, incoming)`` → ``(accepted, duplicates, gaps)``: keep each seq once, in
    order; count the ones already seen; count every jump over a missing seq."""
    problems = []
    cases = [
        (0, [1, 2, 3], ([1, 2, 3], 0, 0)),
        (2, [1, 2, 3, 4], ([3, 4], 2, 0)),
        (0, [1, 2, 2, 3, 5], ([1, 2, 3, 5], 1, 1)),
        (5, [8, 9, 9, 12], ([8, 9, 12], 1, 2)),
    ]
    for last_seq, incoming, expected in cases:
        got, error = attempt(accept, last_seq, list(incoming))
        if error:
            problems.append(error)
        elif tuple(got) != expected:
            problems.append(f"accept({last_seq}, {incoming}) gave {got!r}, expected {expected!r}")
    return report("dedupe", problems)
