"""The sans-I/O connection core, synchronously: no loop, no socket, only the times given."""

from __future__ import annotations

import json

import pytest

from transport_demo.server.connection import Connection, Limits, MemoryStore, check_text
from transport_demo.server.errors import InvalidText, MessageTooLarge, QueueFull
from transport_demo.server.protocol import ConnectionState, EventType, Transport

WALL = 1_800_000_000.25


def conn_of(transport: Transport = Transport.SSE, **limits: int) -> Connection:
    return Connection(
        "c0ffee00-0000-4000-8000-000000000000", transport, 10.0, wall=WALL, limits=Limits(**limits)
    )


def seqs(batch: list[tuple[int, str]]) -> list[int]:
    return [seq for seq, _ in batch]


def test_append_numbers_from_one_without_gaps_and_stores_the_encoded_event() -> None:
    conn = conn_of()
    assert [conn.append(EventType.MESSAGE, f"m{i}", wall=WALL) for i in range(3)] == [1, 2, 3]
    assert conn.last_seq == 3 and conn.pending == 3
    event = json.loads(conn.buffer[0][1])
    assert event == {
        "type": "message",
        "connection_id": conn.id,
        "timestamp": "2027-01-15T08:00:00.250Z",
        "seq": 1,
        "message": "m0",
    }


def test_a_full_queue_refuses_the_new_event_and_keeps_the_old_ones() -> None:
    conn = conn_of(max_queue=2)
    conn.append(EventType.MESSAGE, "a", wall=WALL)
    conn.append(EventType.MESSAGE, "b", wall=WALL)
    with pytest.raises(QueueFull):
        conn.append(EventType.MESSAGE, "c", wall=WALL)
    assert conn.last_seq == 2 and seqs(conn.after(0)) == [1, 2]
    conn.take_unsent()  # a stream wrote them: room again
    assert conn.append(EventType.MESSAGE, "c", wall=WALL) == 3


def test_a_stream_takes_each_event_once_and_a_resume_sends_the_unacknowledged_again() -> None:
    conn = conn_of()
    for text in "abc":
        conn.append(EventType.MESSAGE, text, wall=WALL)
    assert seqs(conn.take_unsent()) == [1, 2, 3]
    assert conn.take_unsent() == []
    assert conn.resume(1) == 1  # the client had 1: 2 and 3 go out again
    assert seqs(conn.take_unsent()) == [2, 3]
    assert seqs(conn.after(0)) == [2, 3]  # 1 was freed by the acknowledgement


def test_the_replay_window_forgets_only_what_was_written() -> None:
    conn = conn_of(replay_window=2, max_queue=10)
    for i in range(5):
        conn.append(EventType.MESSAGE, str(i), wall=WALL)
    assert len(conn.buffer) == 5  # nothing written yet: nothing may be forgotten
    conn.take_unsent()
    assert seqs(conn.after(0)) == [4, 5]  # written, and older than the window


def test_a_long_poll_keeps_events_until_a_later_poll_acknowledges_them() -> None:
    conn = conn_of(Transport.LONG_POLLING)
    for text in "ab":
        conn.append(EventType.MESSAGE, text, wall=WALL)
    assert len(conn.poll_batch(0)) == 2
    assert len(conn.poll_batch(0)) == 2  # the answer was lost: sent again
    assert len(conn.poll_batch(1)) == 1
    assert conn.poll_batch(2) == [] and conn.pending == 0


def test_a_poll_without_resume_point_counts_sending_as_delivering() -> None:
    conn = conn_of(Transport.LONG_POLLING)
    conn.append(EventType.MESSAGE, "a", wall=WALL)
    assert len(conn.poll_batch(None)) == 1
    assert conn.poll_batch(None) == []


def test_a_resume_point_past_the_newest_seq_acknowledges_everything() -> None:
    conn = conn_of(Transport.LONG_POLLING)
    conn.append(EventType.MESSAGE, "a", wall=WALL)
    conn.ack(99)
    assert conn.acked == 1 and conn.after(0) == []
    conn.ack(0)  # never backwards
    assert conn.acked == 1


def test_state_and_expiry_come_from_the_times_given() -> None:
    lp, sse = conn_of(Transport.LONG_POLLING), conn_of(Transport.SSE)
    assert lp.state(attached=False) is ConnectionState.WAITING
    assert sse.state(attached=False) is ConnectionState.DISCONNECTED
    assert sse.state(attached=True) is ConnectionState.LIVE
    assert not lp.expired(15.0, attached=False, poll_expiry=10, grace=5)
    assert lp.expired(20.5, attached=False, poll_expiry=10, grace=5)
    assert not lp.expired(99.0, attached=True, poll_expiry=10, grace=5)
    assert not sse.expired(99.0, attached=False, poll_expiry=10, grace=5)  # never detached
    sse.detached_at = 50.0
    assert not sse.expired(54.0, attached=False, poll_expiry=10, grace=5)
    assert sse.expired(55.5, attached=False, poll_expiry=10, grace=5)


def test_summary_shows_a_short_id_and_never_text() -> None:
    conn = conn_of()
    conn.append(EventType.MESSAGE, "secret text", wall=WALL)
    row = conn.summary(attached=True, now=12.0, wall=WALL)
    assert row["id"] == conn.id[:8] and row["state"] == "live" and row["queued"] == 1
    assert "secret" not in json.dumps(row)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"bytes", InvalidText),
        ("\ud800", InvalidText),
        ("x" * 11, MessageTooLarge),
        ("é" * 6, MessageTooLarge),
    ],
)
def test_check_text_refuses_what_cannot_be_sent(text: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_text(text, 10)


def test_check_text_passes_text_within_the_limit() -> None:
    assert check_text("é" * 5, 10) == "é" * 5


def test_the_memory_store_creates_unique_ids_and_forgets() -> None:
    store = MemoryStore(Limits())
    a = store.create(Transport.SSE, 1.0, wall=WALL)
    b = store.create(Transport.WEBSOCKET, 1.0, wall=WALL)
    assert a.id != b.id and len(store) == 2 and store.get(a.id) is a
    store.remove(a.id)
    assert store.get(a.id) is None and list(store) == [b]
