"""Reading a stream's resume point: ``Last-Event-ID`` or ``?connection_id=…&last_seq=…``."""

from __future__ import annotations

from .errors import InvalidRequest


def resume_point(
    connection_id: str | None, last_seq: str | None, last_event_id: str | None = None
) -> tuple[str | None, int | None]:
    """``(connection_id, last_seq)`` to resume from, or ``(None, None)`` for a new connection.

    ``Last-Event-ID`` (``"<connection_id>:<seq>"``, sent by a browser's EventSource when it
    reconnects by itself) wins over the query, which still names the first connection then.
    """
    if last_event_id:
        cid, sep, seq = last_event_id.rpartition(":")
        if not sep or not cid:
            raise InvalidRequest("Last-Event-ID must look like '<connection_id>:<seq>'.")
        return cid, _seq(seq, "Last-Event-ID")
    if not connection_id:
        return None, None
    return connection_id, None if last_seq in (None, "") else _seq(last_seq, "last_seq")


def _seq(value: str | None, what: str) -> int:
    # isascii() too: str.isdigit() is true for "²" and other Unicode digits that int() refuses.
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidRequest(f"{what} must end in a seq: a whole number, 0 or more.")
    return int(value)
