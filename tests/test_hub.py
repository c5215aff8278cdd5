"""The hub as pure logic: no sockets, no HTTP. A fake clock drives expiry."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest

from transport_demo.server.errors import (
    InvalidText,
    MessageTooLarge,
    QueueFull,
    RateLimited,
    ServerShuttingDown,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from transport_demo.server.hub import Hub, Stream, Transport
from transport_demo.server.settings import Settings

from .waiting import until_async

pytestmark = pytest.mark.anyio

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(**options: Any) -> tuple[Hub, FakeClock]:
    clock = FakeClock()
    defaults: dict[str, Any] = {"heartbeat_interval": 60, "poll_timeout": 5, "resume_grace": 5}
    return Hub(Settings(**{**defaults, **options}), clock=clock), clock


async def started(**options: Any) -> tuple[Hub, FakeClock]:
    hub, clock = make_hub(**options)
    await hub.start()
    return hub, clock


async def connect_lp(hub: Hub) -> str:
    event = json.loads(await hub.aconnect_long_poll())
    assert event["type"] == "connected" and event["resumed"] is False
    return str(event["connection_id"])


async def drain(stream: Stream, count: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    """The next ``count`` events of a stream, decoded (the ``connected`` event included)."""
    out: list[dict[str, Any]] = []
    agen = stream.events()
    async with asyncio.timeout(timeout):
        async for item in agen:
            event = json.loads(item.data)
            if "seq" in event:
                assert item.resume_id == f"{stream.connection_id}:{event['seq']}"
            out.append(event)
            if len(out) == count:
                break
    await agen.aclose()
    return out


async def test_seq_numbering_is_per_connection_and_gapless() -> None:
    hub, _ = await started()
    a, b = await connect_lp(hub), await connect_lp(hub)
    assert [hub.publish(a, f"a{i}") for i in range(3)] == [1, 2, 3]
    assert hub.publish(b, "b0") == 1
    answer = json.loads(await hub.apoll(a, last_seq=0))
    assert answer["type"] == "message"
    assert [m["seq"] for m in answer["messages"]] == [1, 2, 3]
    assert [m["message"] for m in answer["messages"]] == ["a0", "a1", "a2"]
    for m in answer["messages"]:
        assert m["connection_id"] == a and m["type"] == "message"
        assert TIMESTAMP.match(m["timestamp"])
    await hub.close()


async def test_long_poll_redelivers_until_acknowledged() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    hub.publish(cid, "one")
    hub.publish(cid, "two")
    first = json.loads(await hub.apoll(cid, last_seq=0))
    # The answer was "lost": the client polls again with the same resume point.
    again = json.loads(await hub.apoll(cid, last_seq=0))
    assert [m["seq"] for m in again["messages"]] == [1, 2] == [m["seq"] for m in first["messages"]]
    hub.publish(cid, "three")
    after_ack = json.loads(await hub.apoll(cid, last_seq=2))
    assert [m["seq"] for m in after_ack["messages"]] == [3]
    assert hub.connection(cid).buffer[0][0] == 3  # 1 and 2 were freed by the ack
    await hub.close()


async def test_long_poll_without_last_seq_counts_sent_as_delivered() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    hub.publish(cid, "one")
    assert len(json.loads(await hub.apoll(cid))["messages"]) == 1
    answer = json.loads(await hub.apoll(cid, hold=0.05))
    assert answer["type"] == "timeout" and answer["reason"] == "hold_expired"
    await hub.close()


async def test_held_poll_returns_when_data_arrives() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    poll = asyncio.create_task(hub.apoll(cid, last_seq=0, hold=5))
    await until_async(lambda: hub.state_of(cid) == "live", what="poll held")
    assert not poll.done()
    hub.publish(cid, "now")
    answer = json.loads(await asyncio.wait_for(poll, 1))
    assert [m["message"] for m in answer["messages"]] == ["now"]
    await hub.close()


async def test_new_poll_supersedes_held_one_without_loss_or_duplicate() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    old = asyncio.create_task(hub.apoll(cid, last_seq=0, hold=5))
    await until_async(lambda: hub.state_of(cid) == "live", what="poll held")
    new = asyncio.create_task(hub.apoll(cid, last_seq=0, hold=5))
    old_answer = json.loads(await asyncio.wait_for(old, 1))
    assert old_answer == {**old_answer, "type": "timeout", "reason": "superseded"}
    assert "messages" not in old_answer
    hub.publish(cid, "x")
    assert [m["seq"] for m in json.loads(await asyncio.wait_for(new, 1))["messages"]] == [1]
    await hub.close()


async def test_send_and_poll_answers_at_once_and_ends_the_held_poll() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    held = asyncio.create_task(hub.apoll(cid, last_seq=0, hold=5))
    await until_async(lambda: hub.state_of(cid) == "live", what="poll held")
    answer = json.loads(await hub.asend_and_poll(cid, "hello", last_seq=0))
    assert answer["queued_seq"] == 1
    assert [(m["seq"], m["message"]) for m in answer["messages"]] == [(1, "hello")]
    held_answer = json.loads(await asyncio.wait_for(held, 1))
    assert held_answer["type"] == "timeout" and held_answer["reason"] == "superseded"
    await hub.close()


async def test_queue_full_refuses_new_and_keeps_accepted() -> None:
    hub, _ = await started(max_queue=3)
    cid = await connect_lp(hub)
    for i in range(3):
        hub.publish(cid, str(i))
    with pytest.raises(QueueFull):
        hub.publish(cid, "refused")
    answer = json.loads(await hub.apoll(cid, last_seq=0))
    assert [m["message"] for m in answer["messages"]] == ["0", "1", "2"]
    with pytest.raises(QueueFull):  # sent but not acknowledged still counts
        hub.publish(cid, "still refused")
    await hub.apoll(cid, last_seq=3, hold=0)
    assert hub.publish(cid, "accepted") == 4
    await hub.close()


async def test_text_limits() -> None:
    hub, _ = await started(max_message_bytes=8)
    cid = await connect_lp(hub)
    assert hub.publish(cid, "12345678") == 1
    with pytest.raises(MessageTooLarge):
        hub.publish(cid, "123456789")
    with pytest.raises(MessageTooLarge):
        hub.publish(cid, "ééééé")  # 5 characters, 10 bytes
    with pytest.raises(InvalidText):
        hub.publish(cid, "\ud800")
    with pytest.raises(InvalidText):
        hub.publish(cid, 5)  # type: ignore[arg-type]
    await hub.close()


async def test_unknown_and_cross_transport_ids_are_refused() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    for bad in ["nope", "", cid[:8], None, 12]:
        with pytest.raises(UnknownConnection):
            hub.publish(bad, "x")  # type: ignore[arg-type]
    with pytest.raises(UnknownConnection):
        await hub.areceive(cid, "x", Transport.SSE)
    with pytest.raises(UnknownConnection):
        await hub.apoll("nope")
    await hub.close()


async def test_connection_cap() -> None:
    hub, _ = await started(max_connections=2)
    await connect_lp(hub)
    await hub.aopen_stream(Transport.SSE)
    with pytest.raises(TooManyConnections):
        await connect_lp(hub)
    await hub.close()


async def test_stream_delivers_in_order_with_heartbeats() -> None:
    hub, _ = await started(heartbeat_interval=0.05)
    stream = await hub.aopen_stream(Transport.WEBSOCKET)
    cid = stream.connection_id
    hub.publish(cid, "push")
    await stream.areceive("echo")
    got = await drain(stream, 5)
    assert got[0]["type"] == "connected" and got[0]["resumed"] is False
    assert [(e["type"], e["seq"]) for e in got[1:3]] == [("message", 1), ("user_message", 2)]
    beats = [e for e in got[3:] if e["type"] == "heartbeat"]
    assert [b["count"] for b in beats] == [1, 2]
    assert beats[0]["message"] == "Message 1" and "seq" not in beats[0]
    await hub.close()


async def test_resume_replays_after_resume_point_exactly_once() -> None:
    hub, _ = await started()
    stream = await hub.aopen_stream(Transport.SSE)
    cid = stream.connection_id
    for i in range(5):
        hub.publish(cid, f"m{i}")
    got = await drain(stream, 4)  # connected, 1, 2, 3: then the "cut"
    await stream.aclose()
    assert hub.state_of(cid) == "disconnected"
    hub.publish(cid, "while away")
    resumed = await hub.aopen_stream(Transport.SSE, cid, last_seq=got[-1]["seq"])
    again = await drain(resumed, 4)
    assert again[0]["type"] == "connected" and again[0]["resumed"] is True
    assert again[0]["last_seq"] == 3
    assert resumed.connected.resume_id == f"{cid}:3"
    assert [e["seq"] for e in again[1:]] == [4, 5, 6]
    assert again[-1]["message"] == "while away"
    await hub.close()


async def test_resume_takes_over_an_attached_stream() -> None:
    hub, _ = await started()
    old = await hub.aopen_stream(Transport.WEBSOCKET)
    cid = old.connection_id
    await drain(old, 1)
    new = await hub.aopen_stream(Transport.WEBSOCKET, cid, last_seq=0)
    assert old.ended == "superseded"
    assert [e async for e in old.events()][1:] == []  # the old one ends, sending nothing more
    hub.publish(cid, "only once")
    assert [e["seq"] for e in (await drain(new, 2))[1:]] == [1]
    await hub.close()


async def test_unknown_resume_starts_a_new_connection() -> None:
    hub, _ = await started()
    stream = await hub.aopen_stream(Transport.SSE, "forged-id", last_seq=3)
    event = (await drain(stream, 1))[0]
    assert event["resumed"] is False and event["resume_failed"] == "unknown_connection"
    assert event["connection_id"] != "forged-id"
    lp = await connect_lp(hub)  # another transport's id is not resumable either
    assert (await hub.aopen_stream(Transport.SSE, lp, last_seq=0)).connection_id != lp
    await hub.close()


async def test_replay_window_keeps_unwritten_events() -> None:
    hub, _ = await started(replay_window=3, max_queue=10)
    stream = await hub.aopen_stream(Transport.SSE)
    cid = stream.connection_id
    for i in range(8):
        hub.publish(cid, str(i))
    conn = hub.connection(cid)
    assert len(conn.buffer) == 8  # none written yet: none may be forgotten
    await drain(stream, 9)
    assert [seq for seq, _ in conn.buffer] == [6, 7, 8]  # written: the window keeps the last 3
    await stream.aclose()
    resumed = await hub.aopen_stream(Transport.SSE, cid, last_seq=2)
    assert [e.get("seq") for e in await drain(resumed, 4)] == [None, 6, 7, 8]  # a gap: 3..5
    await hub.close()


async def test_expiry_after_grace_and_poll_expiry() -> None:
    hub, clock = await started(poll_timeout=5, resume_grace=5)
    lp = await connect_lp(hub)
    stream = await hub.aopen_stream(Transport.SSE)
    live = await hub.aopen_stream(Transport.WEBSOCKET)
    await stream.aclose()
    clock.now += 5.5
    assert hub.reap() == 1  # the SSE stream's grace is over
    assert lp in hub and stream.connection_id not in hub and live.connection_id in hub
    clock.now += 5  # 10.5 s without a poll > 2 x 5 s
    assert hub.reap() == 1
    assert lp not in hub and live.connection_id in hub  # an attached stream never expires
    with pytest.raises(UnknownConnection):
        await hub.apoll(lp)
    assert hub.stats()["connections_expired"] == 2
    await hub.close()


async def test_isolation_between_connections() -> None:
    hub, _ = await started()
    streams = [await hub.aopen_stream(Transport.WEBSOCKET) for _ in range(3)]
    for i, stream in enumerate(streams):
        hub.publish(stream.connection_id, f"for {i}")
    for i, stream in enumerate(streams):
        events = await drain(stream, 2)
        assert {e["connection_id"] for e in events} == {stream.connection_id}
        assert events[1]["message"] == f"for {i}"
    await hub.close()


async def test_broadcast_reaches_everyone_and_skips_full_queues() -> None:
    hub, _ = await started(max_queue=1)
    a, b = await connect_lp(hub), await connect_lp(hub)
    hub.publish(a, "fills a")
    assert hub.broadcast("all") == 1
    assert json.loads(await hub.apoll(b, last_seq=0))["messages"][0]["message"] == "all"
    await hub.close()


async def test_publish_from_another_thread_wakes_the_stream() -> None:
    hub, _ = await started()
    stream = await hub.aopen_stream(Transport.SSE)
    seqs: list[int] = []

    def notebook_thread() -> None:
        seqs.extend(hub.publish(stream.connection_id, f"t{i}") for i in range(100))

    reader = asyncio.create_task(drain(stream, 101))  # publishes before it reads are kept
    thread = threading.Thread(target=notebook_thread)
    thread.start()
    events = await asyncio.wait_for(reader, 2)
    thread.join()
    assert seqs == list(range(1, 101))
    assert [e["seq"] for e in events[1:]] == seqs
    await hub.close()


async def test_close_ends_streams_and_polls_and_refuses_new_work() -> None:
    hub, _ = await started()
    stream = await hub.aopen_stream(Transport.SSE)
    cid = await connect_lp(hub)
    poll = asyncio.create_task(hub.apoll(cid, last_seq=0, hold=30))
    reader = asyncio.create_task(drain(stream, 100))
    await until_async(lambda: hub.state_of(cid) == "live", what="poll held")
    await hub.close()
    assert json.loads(await asyncio.wait_for(poll, 1))["reason"] == "shutdown"
    assert len(await asyncio.wait_for(reader, 1)) == 1  # connected, then the end
    with pytest.raises(ServerShuttingDown):
        hub.publish(cid, "late")
    with pytest.raises(ServerShuttingDown):
        await connect_lp(hub)


async def test_stats_never_show_full_ids_or_text() -> None:
    hub, _ = await started()
    cid = await connect_lp(hub)
    stream = await hub.aopen_stream(Transport.SSE)
    hub.publish(cid, "secret text")
    text = json.dumps(hub.stats())
    assert cid not in text and stream.connection_id not in text and "secret text" not in text
    stats = hub.stats()
    assert stats["connections"] == {"long-polling": 1, "sse": 1, "websocket": 0, "webtransport": 0}
    assert {c["id"] for c in stats["connection_list"]} == {cid[:8], stream.connection_id[:8]}
    assert stats["states"] == {"live": 1, "waiting": 1, "disconnected": 0}
    await hub.close()


async def test_connection_ids_are_uuid4() -> None:
    hub, _ = make_hub()
    ids = {await connect_lp(hub) for _ in range(200)}
    assert len(ids) == 200
    assert all(
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i)
        for i in ids
    )


@pytest.mark.parametrize(
    "text", ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab\x01", "héllo 👋 </script>"]
)
def test_durable_event_encoding_is_the_general_encoding(text: str) -> None:
    """The hand-written hot path equals the dict-and-encoder path for any text."""
    from transport_demo.server import events

    fast = events.durable_event("message", "9934f0e2-8b38-429c-8c6b-508241544fd9", 7, text)
    decoded = json.loads(fast)
    assert decoded["message"] == text and decoded["seq"] == 7
    general = events.encode(
        events.make_event("message", decoded["connection_id"], seq=7, message=text)
        | {"timestamp": decoded["timestamp"]}
    )
    assert fast == general


def test_timestamps_keep_their_format_across_seconds() -> None:
    from transport_demo.server import events

    assert events.timestamp(1764193525.5) == "2025-11-26T21:45:25.500Z"
    assert events.timestamp(1764193526.25) == "2025-11-26T21:45:26.250Z"
    assert events.timestamp(1764193525.75) == "2025-11-26T21:45:25.750Z"


# -- classroom: per-address connections, texts per second, cutting a transport ------------------


async def test_connections_per_address_are_bounded_until_one_expires() -> None:
    hub, clock = await started(max_connections_per_address=2, resume_grace=5)
    a = await hub.aopen_stream(Transport.SSE, address="10.0.0.7")
    json.loads(await hub.aconnect_long_poll("10.0.0.7"))
    with pytest.raises(TooManyConnectionsFromAddress):
        await hub.aopen_stream(Transport.WEBSOCKET, address="10.0.0.7")
    with pytest.raises(TooManyConnectionsFromAddress):
        await hub.aconnect_long_poll("10.0.0.7")
    await hub.aopen_stream(Transport.WEBSOCKET, address="10.0.0.8")  # another address
    await a.aclose()
    resumed = await hub.aopen_stream(Transport.SSE, a.connection_id, 0, address="10.0.0.7")
    assert resumed.connection_id == a.connection_id  # a resume is no new connection: allowed
    await resumed.aclose()
    clock.now += 6  # past the resume grace: the SSE connection expires, its place is free
    assert hub.reap() == 1
    await hub.aopen_stream(Transport.WEBSOCKET, address="10.0.0.7")
    stats = hub.stats()
    assert stats["refused_per_address"] == 2 and stats["client_addresses"] == 2
    await hub.close()


async def test_texts_per_second_are_bounded_per_connection() -> None:
    hub, clock = await started(max_messages_per_second=1, message_burst=2)
    cid = await connect_lp(hub)
    other = await connect_lp(hub)
    await hub.areceive(cid, "1", Transport.LONG_POLLING)
    await hub.areceive(cid, "2", Transport.LONG_POLLING)
    with pytest.raises(RateLimited):
        await hub.areceive(cid, "3", Transport.LONG_POLLING)
    await hub.areceive(other, "x", Transport.LONG_POLLING)  # the limit is per connection
    assert hub.publish(cid, "the server's own push is not limited") == 3  # "3" was not queued
    clock.now += 1
    assert await hub.areceive(cid, "4", Transport.LONG_POLLING) == 4
    assert hub.stats()["rate_limited"] == 1
    await hub.close()


async def test_disconnect_all_cuts_one_transport_and_keeps_its_connections() -> None:
    hub, _ = await started()
    sse = await hub.aopen_stream(Transport.SSE)
    ws = await hub.aopen_stream(Transport.WEBSOCKET)
    lp = await connect_lp(hub)
    held = asyncio.create_task(hub.apoll(lp, last_seq=0, hold=5))
    await until_async(lambda: hub.state_of(lp) == "live", what="poll held")
    await drain(sse, 1)
    assert hub.disconnect_all(Transport.SSE) == 1
    assert [e async for e in sse.events()][1:] == []  # the stream ends
    assert sse.ended == "cut" and ws.ended is None and not held.done()
    await sse.aclose()
    hub.publish(sse.connection_id, "while cut")
    resumed = await hub.aopen_stream(Transport.SSE, sse.connection_id, last_seq=0)
    assert [e.get("message") for e in await drain(resumed, 2)][1:] == ["while cut"]
    assert hub.disconnect_all(Transport.LONG_POLLING) == 1
    answer = json.loads(await asyncio.wait_for(held, 1))
    assert answer["type"] == "timeout" and answer["reason"] == "cut"
    assert hub.disconnect_all() == 2  # None: every transport (the resumed SSE and the socket)
    assert hub.disconnect_all() == 0  # nothing attached any more
    stats = hub.stats()
    assert stats["waiters_cut"] == 4 and stats["total"] == 3 and stats["streams_resumed"] == 1
    await hub.close()


async def test_disconnect_all_from_another_thread() -> None:
    hub, _ = await started()
    streams = [await hub.aopen_stream(Transport.WEBSOCKET) for _ in range(20)]
    counts: list[int] = []
    thread = threading.Thread(target=lambda: counts.append(hub.disconnect_all(Transport.WEBSOCKET)))
    thread.start()
    thread.join()
    assert counts == [20]
    for stream in streams:
        assert [e async for e in stream.events()][1:] == []  # woken on the hub's loop, ended
    await hub.close()
