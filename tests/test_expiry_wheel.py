"""The expiry wheel (one loop timer for many deadlines) and the light wake-up flag.

The bookkeeping (:class:`Buckets`) is tested without a loop; the wheel and :class:`Wakeup` on a
real asyncio loop; the held poll's hold and the stream's heartbeat through a real hub.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import threading
import tracemalloc

import pytest

from transport_demo.server.expiry_wheel import RESOLUTION, Buckets, ExpiryWheel
from transport_demo.server.hub import Hub
from transport_demo.server.protocol import Transport
from transport_demo.server.settings import Settings
from transport_demo.server.wakeups import Wakeup

pytestmark = pytest.mark.anyio

# -- the bookkeeping, sans I/O ------------------------------------------------------------------


def test_a_deadline_is_rounded_up_to_its_bucket_never_down() -> None:
    buckets = Buckets(0.01)
    rng = random.Random(26)
    deadlines = [rng.uniform(0, 1e5) for _ in range(20_000)]
    deadlines += [k * 0.01 for k in range(1, 2_000)]  # exact multiples, where division rounds
    deadlines += [0.07, 0.29, 0.57, 1.15, 100.03]
    for deadline in deadlines:
        due = buckets.time_of(buckets.key(deadline))
        assert deadline <= due < deadline + 0.01 + 1e-9, deadline


def test_due_buckets_fire_in_time_order_and_not_before_their_time() -> None:
    buckets = Buckets(0.01)
    fired: list[str] = []
    buckets.add(0.125, lambda: fired.append("b"))
    _, earliest = buckets.add(0.031, lambda: fired.append("a"))
    assert earliest  # a new earliest bucket: a driver re-arms its timer
    _, earliest = buckets.add(0.032, lambda: fired.append("a2"))  # same bucket as 0.031
    assert not earliest
    _, earliest = buckets.add(5.0, lambda: fired.append("c"))
    assert not earliest
    assert buckets.next_due() == pytest.approx(0.04)
    assert buckets.pop_due(0.039) == []
    for callback in buckets.pop_due(0.2):
        callback()
    assert fired == ["a", "a2", "b"]
    assert buckets.next_due() == pytest.approx(5.0)
    assert buckets.pending() == 1


def test_a_cancelled_entry_never_fires_and_a_fired_one_says_so() -> None:
    buckets = Buckets(0.01)
    fired: list[int] = []
    keep, _ = buckets.add(1.0, lambda: fired.append(1))
    drop, _ = buckets.add(1.0, lambda: fired.append(2))
    drop.cancel()
    assert drop.cancelled and not drop.fired
    assert buckets.pending() == 1
    for callback in buckets.pop_due(1.0):
        callback()
    assert fired == [1]
    assert keep.fired and not keep.cancelled
    keep.cancel()  # after it ran: no effect
    assert keep.fired
    assert buckets.next_due() is None


def test_clear_forgets_every_entry() -> None:
    buckets = Buckets(0.01)
    entry, _ = buckets.add(1.0, lambda: None)
    buckets.clear()
    assert entry.cancelled
    assert buckets.pop_due(10.0) == []
    with pytest.raises(ValueError):
        Buckets(0)


# -- the wheel on a loop --------------------------------------------------------------------------


async def test_many_deadlines_one_loop_timer_none_early_none_lost() -> None:
    loop = asyncio.get_running_loop()
    wheel = ExpiryWheel(loop)
    start = loop.time()
    late: list[float] = []
    done = asyncio.Event()
    n = 1_000

    def fire(deadline: float) -> None:
        late.append(loop.time() - deadline)
        if len(late) == n:
            done.set()

    def armed() -> int:  # live timers in the loop's heap (cancelled ones wait there to be popped)
        return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]

    before = armed()
    rng = random.Random(7)
    for _ in range(n):
        deadline = start + rng.uniform(0.05, 0.3)
        wheel.call_at(deadline, functools.partial(fire, deadline))
    assert armed() == before + 1  # a thousand deadlines, one loop timer
    async with asyncio.timeout(5):
        await done.wait()
    assert min(late) >= 0  # never before its deadline
    assert sorted(late)[int(0.99 * n)] < RESOLUTION + 0.05  # rounded up, then the loop's own lag
    assert wheel.pending() == 0


async def test_an_earlier_deadline_rearms_the_timer_and_cancel_works() -> None:
    loop = asyncio.get_running_loop()
    wheel = ExpiryWheel(loop)
    order: list[str] = []
    wheel.call_later(0.2, lambda: order.append("late"))
    cancelled = wheel.call_later(0.05, lambda: order.append("cancelled"))
    wheel.call_later(0.03, lambda: order.append("early"))
    cancelled.cancel()
    await asyncio.sleep(0.1)
    assert order == ["early"]
    await asyncio.sleep(0.2)
    assert order == ["early", "late"]
    assert cancelled.cancelled


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[object] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    try:
        wheel = ExpiryWheel(loop)
        ran: list[int] = []

        def bad() -> None:
            raise ValueError("boom")

        wheel.call_later(0.01, bad)
        wheel.call_later(0.01, lambda: ran.append(1))
        await asyncio.sleep(0.1)
        assert ran == [1]
        assert [type(e) for e in reported] == [ValueError]
    finally:
        loop.set_exception_handler(None)


async def test_close_disarms() -> None:
    wheel = ExpiryWheel(asyncio.get_running_loop())
    ran: list[int] = []
    entry = wheel.call_later(0.02, lambda: ran.append(1))
    wheel.close()
    await asyncio.sleep(0.06)
    assert ran == [] and entry.cancelled


# -- the wake-up flag -----------------------------------------------------------------------------


async def test_wakeup_set_before_wait_returns_at_once_and_clear_lowers_it() -> None:
    wakeup = Wakeup()
    assert not wakeup.is_set()
    wakeup.set()
    wakeup.set()  # idempotent
    await wakeup.wait()  # returns without anyone setting it again
    assert wakeup.is_set()
    wakeup.clear()
    assert not wakeup.is_set()
    waiting = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    wakeup.set()
    async with asyncio.timeout(1):
        await waiting
    assert wakeup._future is None  # no future kept while nobody waits


async def test_wakeup_clear_before_take_misses_nothing() -> None:
    """The loops' ordering: clear, then look; a set() during the look is seen by the next wait."""
    wakeup = Wakeup()
    items: list[int] = []
    taken: list[int] = []

    async def consumer() -> None:
        while len(taken) < 50:
            wakeup.clear()
            taken.extend(items)
            items.clear()
            await asyncio.sleep(0)  # the look yields, as a store step may
            if len(taken) < 50 and not items:
                await wakeup.wait()

    task = asyncio.create_task(consumer())
    for i in range(50):
        items.append(i)
        wakeup.set()
        await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await task
    assert taken == list(range(50))


async def test_wakeup_cancelled_wait_and_one_waiter_at_a_time() -> None:
    wakeup = Wakeup()
    first = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await wakeup.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert wakeup._future is None
    wakeup.set()
    await wakeup.wait()


def test_wakeup_is_much_smaller_than_an_asyncio_event() -> None:
    """The bytes saved per connection (each waiter has one), measured with tracemalloc."""
    n = 2_000

    def allocated(make: type) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            kept = [make() for _ in range(n)]
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        del kept
        return sum(stat.size_diff for stat in stats) / n

    event, wakeup = allocated(asyncio.Event), allocated(Wakeup)
    print(f"asyncio.Event {event:.0f} B, Wakeup {wakeup:.0f} B, saved {event - wakeup:.0f} B each")
    assert wakeup < 80
    assert event - wakeup > 400


# -- through the hub ------------------------------------------------------------------------------


async def test_a_held_poll_ends_on_the_wheel_within_its_resolution() -> None:
    hub = Hub(Settings(poll_timeout=1.0, heartbeat_interval=0.2))
    await hub.start()
    try:
        loop = asyncio.get_running_loop()
        connection_id = json.loads(await hub.aconnect_long_poll())["connection_id"]
        began = loop.time()
        answer = json.loads(await hub.apoll(connection_id, hold=0.15))
        took = loop.time() - began
        assert answer["type"] == "timeout"
        assert 0.15 <= took < 0.15 + RESOLUTION + 0.1
        # a message during the hold answers at once
        task = asyncio.create_task(hub.apoll(connection_id, hold=5))
        await asyncio.sleep(0.05)
        hub.publish(connection_id, "hi")
        async with asyncio.timeout(1):
            got = json.loads(await task)
        assert [m["message"] for m in got["messages"]] == ["hi"]
        assert hub.expiry_wheel().pending() == 0  # the answered poll's hold was cancelled
    finally:
        await hub.close()


async def test_heartbeats_come_from_the_wheel_never_early() -> None:
    hub = Hub(Settings(heartbeat_interval=0.05))
    await hub.start()
    try:
        loop = asyncio.get_running_loop()
        stream = await hub.aopen_stream(Transport.SSE)
        beats: list[float] = []
        began = loop.time()
        async with asyncio.timeout(3):
            async for item in stream.events():
                if json.loads(item.data)["type"] == "heartbeat":
                    beats.append(loop.time() - began)
                    if len(beats) == 5:
                        break
        await stream.aclose()
        for i, at in enumerate(beats, start=1):
            assert at >= 0.05 * i - 1e-6  # never before the beat is due
        assert beats[-1] < 0.25 + RESOLUTION + 0.15
    finally:
        await hub.close()


async def test_the_servers_wheel_is_never_replaced_from_another_loop() -> None:
    """A hub's wheel belongs to the loop that runs it; a call from another running loop (a
    notebook's, by mistake) gets a wheel of its own and leaves the server's alone."""
    hub = Hub(Settings())
    server_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=server_loop.run_forever, daemon=True)
    thread.start()
    try:

        async def wheel_of_server() -> ExpiryWheel:
            return hub.expiry_wheel()

        def on_server() -> ExpiryWheel:
            return asyncio.run_coroutine_threadsafe(wheel_of_server(), server_loop).result(5)

        servers = await asyncio.to_thread(on_server)
        assert servers.loop is server_loop
        mine = hub.expiry_wheel()
        assert mine is not servers and mine.loop is asyncio.get_running_loop()
        assert await asyncio.to_thread(on_server) is servers  # still the server's
    finally:
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)
        server_loop.close()
    # the first loop no longer runs: the hub's wheel moves to this one
    assert hub.expiry_wheel() is hub.expiry_wheel()
    assert hub.expiry_wheel().loop is asyncio.get_running_loop()
