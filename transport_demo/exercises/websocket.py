"""WebSocket exercises: a frame the server accepts, and what the close codes mean."""

from __future__ import annotations

import json
from collections.abc import Callable

from websockets.sync.client import connect

from . import attempt, report


def check_frame(make_frame: Callable[[str], str], url: str) -> bool:
    """``make_frame(text)`` → a text frame the server echoes as a ``user_message`` with that text.
    Checked against the real server at ``url``, with awkward texts too."""
    problems = []
    texts = ["hello", 'quotes " and \\ backslashes', "line\nbreak", "ünïcødé ✓"]
    with connect("ws" + url[4:] + "/ws") as ws:
        json.loads(ws.recv(5))  # connected
        for text in texts:
            frame, error = attempt(make_frame, text)
            if error:
                problems.append(error)
                continue
            if not isinstance(frame, str):
                problems.append(f"make_frame({text!r}) gave {type(frame).__name__}, not str")
                continue
            ws.send(frame)
            while True:
                event = json.loads(ws.recv(5))
                if event["type"] != "heartbeat":
                    break
            if event["type"] == "error":
                problems.append(f"for {text!r} the server said {event['error']}: {frame!r}")
            elif event.get("message") != text:
                problems.append(f"for {text!r} the echo was {event.get('message')!r}")
    return report("frame", problems)


CLOSE_CODES = {
    1000: "normal",
    1001: "going away",
    1008: "policy",
    1009: "too big",
    4000: "superseded",
}


def check_close_codes(meanings: dict[int, str]) -> bool:
    """``meanings``: close code → one of "normal", "going away", "policy", "too big",
    "superseded" — for 1000, 1001, 1008, 1009 and 4000 (see docs/protocol.md)."""
    problems = []
    for code, meaning in CLOSE_CODES.items():
        if code not in meanings:
            problems.append(f"{code} is missing")
        elif str(meanings[code]).strip().lower() != meaning:
            problems.append(f"{code} does not mean {meanings[code]!r}")
    return report("close codes", problems)
