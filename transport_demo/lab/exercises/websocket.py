"""WebSocket exercises: a message the server accepts, the handshake's accept key, a frame decoded
by hand, and what a client should do after each close code."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from websockets.sync.client import connect

from ...server.urls import endpoint_url
from . import attempt, report


def check_message(make_message: Callable[[str], str], url: str) -> bool:
    """``make_message(text)`` → a text message the server echoes as a ``user_message`` with that
    text. Checked against the real server at ``url``, with awkward texts too."""
    problems = []
    texts = ["hello", 'quotes " and \\ backslashes', "line\nbreak", "ünïcødé ✓"]
    with connect(endpoint_url(url, "/ws", websocket=True)) as ws:
        json.loads(ws.recv(5))  # connected
        for text in texts:
            message, error = attempt(make_message, text)
            if error:
                problems.append(error)
                continue
            if not isinstance(message, str):
                problems.append(f"make_message({text!r}) gave {type(message).__name__}, not str")
                continue
            ws.send(message)
            while True:
                event = json.loads(ws.recv(5))
                if event["type"] != "heartbeat":
                    break
            if event["type"] == "error":
                problems.append(f"for {text!r} the server said {event['error']}: {message!r}")
            elif event.get("message") != text:
                problems.append(f"for {text!r} the echo was {event.get('message')!r}")
    return report("message", problems)


# -- Sec-WebSocket-Accept (RFC 6455 §1.3, §4.2.2) ------------------------------------------------

RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def check_accept(accept: Callable[[str], str]) -> bool:
    """``accept(key)`` → the ``Sec-WebSocket-Accept`` a server answers ``Sec-WebSocket-Key: key``
    with. The RFC's own example first, then keys the RFC doesn't show."""
    problems = []
    for key in [RFC_SAMPLE_KEY, "x3JJHMbDL1EzLkh9GBhXDw==", "AQIDBAUGBwgJCgsMDQ4PEA=="]:
        got, error = attempt(accept, key)
        if error:
            problems.append(error)
        elif not isinstance(got, str):
            problems.append(
                f"accept({key!r}) gave {type(got).__name__}: the header is text (.decode() it)"
            )
        elif got != _accept(key):
            hint = ""
            if len(got) == 40:
                hint = " (that looks like hex: base64-encode the 20 raw digest bytes instead)"
            elif got == _accept(key.strip("=")) or got == _accept(base64.b64decode(key).hex()):
                hint = " (use the key exactly as it came, as text: don't decode or strip it)"
            # Only the RFC's own answer is shown: the others are for checking, not copying.
            expected = f", expected {RFC_SAMPLE_ACCEPT!r}" if key == RFC_SAMPLE_KEY else ""
            problems.append(f"accept({key!r}) gave {got!r}{expected}{hint}")
    return report("Sec-WebSocket-Accept", problems)


# -- A frame by hand (RFC 6455 §5.2) -------------------------------------------------------------

FRAME_TO_DECODE = bytes.fromhex("818b5e1fa2071c70cc6d316ad027bc8331")
_DECODED: dict[str, Any] = {
    "fin": True,
    "opcode": 1,
    "masked": True,
    "length": 11,
    "mask_key": bytes.fromhex("5e1fa207"),
    "text": "Bonjour ✓",
}
_HINTS = {
    "fin": "FIN is the top bit of byte 0",
    "opcode": "the opcode is the low 4 bits of byte 0",
    "masked": "MASK is the top bit of byte 1",
    "length": "the length is the low 7 bits of byte 1, in bytes (not characters)",
    "mask_key": "the masking key is the 4 bytes right after the length",
    "text": "unmask: payload byte i XOR key byte i % 4, then decode the bytes as UTF-8",
}


def check_decoded(answer: dict[str, Any]) -> bool:
    """``answer``: the fields of :data:`FRAME_TO_DECODE` — ``fin`` (bool), ``opcode`` (int),
    ``masked`` (bool), ``length`` (int), ``mask_key`` (4 bytes) and ``text`` (str)."""
    problems = []
    if not isinstance(answer, dict):
        return report("frame by hand", [f"give a dict, not {type(answer).__name__}"])
    for name, expected in _DECODED.items():
        got = answer.get(name)
        if name not in answer:
            problems.append(f"{name!r} is missing")
        elif type(got) is not type(expected) or got != expected:
            problems.append(f"{name} = {got!r} is not right: {_HINTS[name]}")
    return report("frame by hand", problems)


# -- After the close: reconnect, back off, or give up? -------------------------------------------

DECISIONS = ("reconnect", "back off", "give up")
CLOSE_DECISIONS = {
    1000: "give up",  # a deliberate, normal end: reconnecting would undo it
    1001: "back off",  # the server is going away (shutting down): come back later, jittered
    1006: "reconnect",  # cut, nobody closed it: soon, after a short random delay (§7.2.3)
    1008: "give up",  # policy violation: the same client would be refused again
    1009: "give up",  # message too big: sending it again gets the same answer
    1011: "back off",  # the server hit an internal error: don't hammer it
    1012: "back off",  # service restart: come back after a randomized delay
    4000: "give up",  # superseded: another socket resumed this connection; taking it back loops
}
_WHY = {
    1000: "1000 is a normal closure: someone ended the conversation on purpose",
    1001: "1001: the server is shutting down; every client reconnecting at once finds it down "
    "(or swamps its replacement)",
    1006: "1006: the connection was cut and nobody chose to close it: reconnect soon (after a "
    "short random delay, RFC 6455 §7.2.3) and resume",
    1008: "1008: the server refused what this client does; it will refuse it again",
    1009: "1009: the message was too big; a client that reconnects and resends it gets the "
    "same close, in a loop: split the message or tell the user",
    1011: "1011: the server failed; an instant retry storm makes it worse",
    1012: "1012: the service is restarting; come back after a (randomized) pause",
    4000: "4000: another socket took this connection over; reconnecting would steal it back, "
    "and the two would take turns forever",
}


def check_close_decisions(decisions: dict[int, str]) -> bool:
    """``decisions``: close code → "reconnect" (soon, resuming), "back off" (reconnect later,
    after a growing, randomized delay) or "give up" (don't reconnect by yourself; tell the user)
    — for 1000, 1001, 1006, 1008, 1009, 1011, 1012 and 4000."""
    problems = []
    if not isinstance(decisions, dict):
        return report("close codes", [f"give a dict, not {type(decisions).__name__}"])
    for code, expected in CLOSE_DECISIONS.items():
        got = decisions.get(code)
        if code not in decisions:
            problems.append(f"{code} is missing")
        elif str(got).strip().lower() not in DECISIONS:
            problems.append(f"{code}: {got!r} is not one of {', '.join(DECISIONS)}")
        elif str(got).strip().lower() != expected:
            problems.append(f"{code}: not {got!r}. Think again: {_WHY[code]}")
    return report("close codes", problems)
