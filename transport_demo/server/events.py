"""Event construction and JSON encoding: pure functions, no I/O.

Every event is a JSON object with ``type``, ``connection_id`` and ``timestamp``. Events are encoded
once, when they are made, and the encoded text is what is stored for replay and written to every
transport, so a replay sends exactly the bytes of the first delivery.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .protocol import EventType

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_encode_string = _encoder.encode

# The formatted second of the last timestamp: strftime once per second, not once per event.
_last_second: tuple[int, str] = (-1, "")


def timestamp(now: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-25T21:45:25.123Z``."""
    global _last_second
    if now is None:
        now = time.time()
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    cached_second, formatted = _last_second
    if seconds != cached_second:
        formatted = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, formatted)
    return f"{formatted}.{millis:03d}Z"


def encode(event: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (the transports carry UTF-8)."""
    return _encoder.encode(event)


def make_event(event_type: str, connection_id: str | None, **fields: Any) -> dict[str, Any]:
    """An event dict with the three fields every event has, then ``fields``."""
    return {"type": event_type, "connection_id": connection_id, "timestamp": timestamp(), **fields}


def durable_event(
    event_type: str, connection_id: str, seq: int, text: str, wall: float | None = None
) -> str:
    """A durable event (``message`` or ``user_message``), encoded.

    The hot path of every push: written out rather than built as a dict and encoded, which took
    twice as long. Equal to ``encode(make_event(event_type, connection_id, seq=seq,
    message=text))`` (a test holds it to that); only the text needs escaping. ``wall`` is the Unix
    time for the timestamp (now when absent).
    """
    return (
        f'{{"type":"{event_type}","connection_id":"{connection_id}",'
        f'"timestamp":"{timestamp(wall)}","seq":{seq},"message":{_encode_string(text)}}}'
    )


def durable_event_halves(
    event_type: str, connection_id: str, text: str, wall: float | None = None
) -> tuple[str, str]:
    """:func:`durable_event` before and after its seq, for a store that assigns the seq itself
    (the Redis append script puts it in between: the stored bytes are exactly the same)."""
    return (
        f'{{"type":"{event_type}","connection_id":"{connection_id}",'
        f'"timestamp":"{timestamp(wall)}","seq":',
        f',"message":{_encode_string(text)}}}',
    )


def stream_connected(
    connection_id: str,
    transport: str,
    *,
    resumed: bool,
    last_seq: int,
    heartbeat_interval: float,
    resume_grace: float,
    **extra: Any,
) -> str:
    """A stream's first event, encoded: which connection, whether it resumed, and from where."""
    return encode(
        make_event(
            EventType.CONNECTED,
            connection_id,
            resumed=resumed,
            transport=transport,
            last_seq=last_seq,
            heartbeat_interval=heartbeat_interval,
            resume_grace=resume_grace,
            **extra,
        )
    )


def poll_connected(connection_id: str, *, poll_timeout: float, expires_after: float) -> str:
    """The answer to a long poll that opened a connection, encoded."""
    return encode(
        make_event(
            EventType.CONNECTED,
            connection_id,
            resumed=False,
            transport="long-polling",
            poll_timeout=poll_timeout,
            expires_after=expires_after,
        )
    )


def poll_timeout(connection_id: str, reason: str, *, poll_timeout: float, hold: float) -> str:
    """A long poll answered with nothing (its hold ran out, or it was superseded, cut or shut
    down: ``reason``), encoded."""
    return encode(
        make_event(
            EventType.TIMEOUT,
            connection_id,
            reason=reason,
            poll_timeout=poll_timeout,
            hold=round(hold, 3),
        )
    )


def heartbeat_event(connection_id: str, count: int) -> str:
    """A heartbeat, encoded: not durable, so no ``seq``."""
    return encode(
        make_event(EventType.HEARTBEAT, connection_id, count=count, message=f"Message {count}")
    )


def error_event(connection_id: str | None, code: str, detail: str) -> dict[str, Any]:
    """An ``error`` event; ``connection_id`` is ``None`` where no connection is known."""
    return make_event(EventType.ERROR, connection_id, error=code, detail=detail)


def poll_batch(connection_id: str, encoded_events: list[str], **fields: Any) -> str:
    """A long-poll answer carrying events: ``{"type": "message", ..., "messages": [...]}``.

    The stored events are spliced in as they are, so a batch costs no re-encoding.
    """
    head = encode(make_event(EventType.MESSAGE, connection_id, **fields))
    return head[:-1] + ',"messages":[' + ",".join(encoded_events) + "]}"
