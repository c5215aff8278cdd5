"""The hub: connections, per-connection seq, replay buffers, acks and resume, limits and cleanup.

Pure logic: no HTTP and no sockets. Routers turn requests into calls here and write what comes back;
the hub's answers are already-encoded JSON text.

Delivery invariants, per connection:

* Durable events get ``seq`` 1, 2, 3, ... with no gaps, and are stored encoded in ``buffer``.
* ``acked`` is the client's resume point: everything up to it was received, and may be freed.
* ``released`` is how far the hub may let the replay window forget: for streams (SSE, WebSocket)
  the highest seq handed to the socket, for long polling the same as ``acked``. An event is freed
  when ``seq <= acked``, or when it is older than the last ``replay_window`` events *and* already
  released. So nothing accepted is ever dropped before it was at least written once.
* Pending (written-to-nobody-yet, or for long polling not yet acknowledged) is
  ``last_seq - released``; it never exceeds ``max_queue``: a new event past that is refused with
  :class:`~transport_demo.errors.QueueFull`, never silently dropped.

Threading: the state belongs to the server's event loop, but :meth:`Hub.publish` and
:meth:`Hub.broadcast` may be called from any thread (a notebook's). A ``threading.Lock`` guards the
state, so those calls return their seq at once without a round trip to the loop; only the wake-up of
a waiting stream crosses over, with ``call_soon_threadsafe``, batched: one loop wake-up per burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from . import events
from .errors import (
    InvalidText,
    MessageTooLarge,
    QueueFull,
    ServerShuttingDown,
    TooManyConnections,
    UnknownConnection,
)
from .settings import Settings

__all__ = ["Connection", "Hub", "Outgoing", "Stream", "Transport"]

MAX_UNSENT_ERRORS = 64


class Transport(enum.StrEnum):
    """The three transports; the value is the name used on the wire and in /stats."""

    LONG_POLLING = "long-polling"
    SSE = "sse"
    WEBSOCKET = "websocket"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event for a stream: its encoded JSON and, where a client can resume after it,
    ``resume_id`` (``"<connection_id>:<seq>"``, the SSE ``id:`` field)."""

    data: str
    resume_id: str | None = None


class _Waiter:
    """Whatever currently waits on a connection: an attached stream or a held long poll."""

    __slots__ = ("conn", "ended", "wakeup")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.wakeup = asyncio.Event()
        # Why this waiter must stop: "superseded", "shutdown", "expired" or "closed".
        self.ended: str | None = None


class Connection:
    """One client connection's state. Owned by the hub; read it, don't change it."""

    __slots__ = (
        "acked",
        "buffer",
        "created",
        "delivered",
        "detached_at",
        "heartbeats",
        "id",
        "last_seen",
        "next_seq",
        "received",
        "released",
        "transport",
        "waiter",
    )

    def __init__(self, connection_id: str, transport: Transport, now: float) -> None:
        self.id = connection_id
        self.transport = transport
        self.created = time.time()
        self.last_seen = now  # hub clock
        self.next_seq = 1
        self.buffer: deque[tuple[int, str]] = deque()
        self.acked = 0
        self.released = 0
        self.heartbeats = 0
        self.received = 0
        self.delivered = 0
        self.waiter: _Waiter | None = None
        self.detached_at: float | None = None  # hub clock; streams only

    @property
    def short_id(self) -> str:
        """The first 8 characters: enough to tell connections apart, useless as a key."""
        return self.id[:8]

    @property
    def last_seq(self) -> int:
        """The seq of the newest durable event (0 before the first)."""
        return self.next_seq - 1

    @property
    def pending(self) -> int:
        """Durable events not yet written (streams) or not yet acknowledged (long polling)."""
        return self.next_seq - 1 - self.released

    @property
    def state(self) -> str:
        """``live``, ``waiting`` (long polling between polls) or ``disconnected`` (in grace)."""
        if self.waiter is not None:
            return "live"
        if self.transport is Transport.LONG_POLLING:
            return "waiting"
        return "disconnected"


def _new_connection_id() -> str:
    # uuid4: 122 random bits from os.urandom, so ids can't be guessed.
    return str(uuid.uuid4())


class Hub:
    """Connections and their delivery bookkeeping; see the module docstring for the invariants.

    Call :meth:`start` on the server's loop before use and :meth:`close` when the server stops.
    ``clock`` is the monotonic clock used for expiry (tests pass a fake one).
    """

    def __init__(
        self, settings: Settings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self._clock = clock
        self._lock = threading.Lock()
        self._conns: dict[str, Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._to_wake: set[_Waiter] = set()
        self._wake_scheduled = False
        self._closing = False
        self._reaper: asyncio.Task[None] | None = None
        self._started = clock()
        self._counters = dict.fromkeys(
            (
                "connections_opened",
                "connections_expired",
                "messages_received",
                "messages_published",
                "events_sent",
                "heartbeats_sent",
            ),
            0,
        )

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and start the task that removes expired connections."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        self._reaper = asyncio.create_task(self._reap_forever(), name="transport-demo-reaper")

    async def close(self, timeout: float = 0.5) -> None:
        """End every stream and held poll (``shutdown``), refuse new ones, and give them up to
        ``timeout`` seconds to write their last words (a poll's answer, a WebSocket close)."""
        with self._lock:
            self._closing = True
            for conn in self._conns.values():
                if conn.waiter is not None:
                    self._end(conn.waiter, "shutdown")
        deadline = asyncio.get_running_loop().time() + timeout
        while self._attached() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    def _attached(self) -> bool:
        with self._lock:
            return any(conn.waiter is not None for conn in self._conns.values())

    # -- connections ----------------------------------------------------------------------------

    def _create(self, transport: Transport) -> Connection:
        if self._closing:
            raise ServerShuttingDown("The server is shutting down.")
        if len(self._conns) >= self.settings.max_connections:
            raise TooManyConnections(
                f"The server holds its maximum of {self.settings.max_connections} connections; "
                "try again later."
            )
        conn = Connection(_new_connection_id(), transport, self._clock())
        self._conns[conn.id] = conn
        self._counters["connections_opened"] += 1
        return conn

    def _get(self, connection_id: object, transport: Transport | None = None) -> Connection:
        conn = self._conns.get(connection_id) if isinstance(connection_id, str) else None
        if conn is None or (transport is not None and conn.transport is not transport):
            # Same answer for "expired", "never existed" and "another transport's id": an id is
            # a key, and the answer must not tell a guesser which ids exist elsewhere.
            raise UnknownConnection(
                "No such connection: it expired or never existed. Start a new connection."
            )
        return conn

    def connection(self, connection_id: str) -> Connection:
        """The connection with this id; raises :class:`UnknownConnection`."""
        with self._lock:
            return self._get(connection_id)

    def __len__(self) -> int:
        return len(self._conns)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._conns

    # -- durable events -------------------------------------------------------------------------

    def _check_text(self, text: object) -> str:
        if not isinstance(text, str):
            raise InvalidText("The text must be a string.")
        limit = self.settings.max_message_bytes
        if len(text) * 4 > limit:  # only then can the UTF-8 form be over the limit
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidText("The text is not valid Unicode (a lone surrogate).") from None
            if size > limit:
                raise MessageTooLarge(
                    f"The text is {size} bytes; the limit is {limit} bytes (UTF-8)."
                )
        elif not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidText("The text is not valid Unicode (a lone surrogate).") from None
        return text

    def _append(self, conn: Connection, event_type: str, text: str) -> int:
        if conn.pending >= self.settings.max_queue:
            raise QueueFull(
                f"{conn.pending} events are waiting for this connection (the limit is "
                f"{self.settings.max_queue}); this one was refused, none were dropped."
            )
        seq = conn.next_seq
        conn.next_seq = seq + 1
        conn.buffer.append((seq, events.durable_event(event_type, conn.id, seq, text)))
        if conn.waiter is not None:
            self._notify(conn.waiter)
        return seq

    def publish(self, connection_id: str, text: str) -> int:
        """Queue a durable ``message`` for one connection and return its seq. Any thread.

        Raises :class:`UnknownConnection`, :class:`MessageTooLarge`, :class:`QueueFull`.
        """
        text = self._check_text(text)
        with self._lock:
            self._refuse_if_closing()
            seq = self._append(self._get(connection_id), "message", text)
            self._counters["messages_published"] += 1
            return seq

    def broadcast(self, text: str) -> int:
        """Queue a durable ``message`` for every connection; return how many took it. Any thread.

        A connection whose queue is full is skipped (it is not counted); the others still get it.
        """
        text = self._check_text(text)
        count = 0
        with self._lock:
            self._refuse_if_closing()
            for conn in self._conns.values():
                try:
                    self._append(conn, "message", text)
                except QueueFull:
                    continue
                count += 1
            self._counters["messages_published"] += count
        return count

    def receive(self, connection_id: str, text: str, transport: Transport) -> int:
        """A client sent ``text``: queue its echo (``message``, on WebSocket ``user_message``)."""
        text = self._check_text(text)
        with self._lock:
            self._refuse_if_closing()
            conn = self._get(connection_id, transport)
            event_type = "user_message" if transport is Transport.WEBSOCKET else "message"
            seq = self._append(conn, event_type, text)
            conn.received += 1
            conn.last_seen = self._clock()
            self._counters["messages_received"] += 1
            return seq

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise ServerShuttingDown("The server is shutting down.")

    def _ack(self, conn: Connection, last_seq: int) -> None:
        # A resume point past the newest seq (a forged or confused client) acknowledges everything.
        point = min(last_seq, conn.last_seq)
        if point > conn.acked:
            conn.acked = point
        if conn.transport is Transport.LONG_POLLING:
            conn.released = conn.acked
        self._trim(conn)

    def _trim(self, conn: Connection) -> None:
        buffer, window = conn.buffer, self.settings.replay_window
        while buffer and (
            buffer[0][0] <= conn.acked or (len(buffer) > window and buffer[0][0] <= conn.released)
        ):
            buffer.popleft()

    def _after(self, conn: Connection, seq: int) -> list[tuple[int, str]]:
        """Stored events with a seq above ``seq``, in order."""
        buffer = conn.buffer
        if not buffer or buffer[-1][0] <= seq:
            return []
        start = max(0, seq + 1 - buffer[0][0])
        return list(itertools.islice(buffer, start, None))

    # -- wake-ups -------------------------------------------------------------------------------

    def _notify(self, waiter: _Waiter) -> None:
        # Called with the lock held. asyncio.Event is not thread-safe: from another thread the
        # set() is handed to the loop, once per burst however many waiters it wakes.
        if self._loop is None or threading.get_ident() == self._loop_thread:
            waiter.wakeup.set()
            return
        self._to_wake.add(waiter)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._flush_wakes)

    def _flush_wakes(self) -> None:
        with self._lock:
            waiters, self._to_wake = self._to_wake, set()
            self._wake_scheduled = False
        for waiter in waiters:
            waiter.wakeup.set()

    def _end(self, waiter: _Waiter, reason: str) -> None:
        if waiter.ended is None:
            waiter.ended = reason
        self._notify(waiter)

    # -- long polling ---------------------------------------------------------------------------

    def connect_long_poll(self) -> str:
        """Create a long-polling connection; return its encoded ``connected`` event."""
        with self._lock:
            conn = self._create(Transport.LONG_POLLING)
            return events.encode(
                events.make_event(
                    "connected",
                    conn.id,
                    resumed=False,
                    transport=conn.transport.value,
                    poll_timeout=self.settings.poll_timeout,
                    expires_after=self.settings.effective_poll_expiry,
                )
            )

    async def poll(
        self, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
    ) -> str:
        """Answer a long poll: events after the resume point, at once or when they come.

        Returns the encoded answer: ``message`` with ``messages``, or ``timeout`` when nothing
        came within ``hold`` seconds (default ``poll_timeout``) or a newer poll took over
        (``"reason": "superseded"``). With ``last_seq`` the events up to it are acknowledged and
        later ones are sent again until acknowledged; without it, events count as delivered once
        sent.
        """
        hold = self.settings.poll_timeout if hold is None else hold
        with self._lock:
            self._refuse_if_closing()
            conn = self._get(connection_id, Transport.LONG_POLLING)
            conn.last_seen = self._clock()
            if last_seq is not None:
                self._ack(conn, last_seq)
            if conn.waiter is not None:  # at most one held poll: the older one ends, empty
                self._end(conn.waiter, "superseded")
            answer = self._poll_answer(conn, last_seq)
            if answer is not None or hold <= 0:
                return answer or self._timeout_answer(conn, "hold_expired")
            waiter = conn.waiter = _Waiter(conn)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(hold):
                    while True:
                        await waiter.wakeup.wait()
                        with self._lock:
                            waiter.wakeup.clear()
                            if waiter.ended is not None:
                                return self._timeout_answer(conn, waiter.ended)
                            answer = self._poll_answer(conn, last_seq)
                            if answer is not None:
                                return answer
            with self._lock:
                return self._poll_answer(conn, last_seq) or self._timeout_answer(
                    conn, waiter.ended or "hold_expired"
                )
        finally:
            with self._lock:
                if conn.waiter is waiter:
                    conn.waiter = None
                conn.last_seen = self._clock()

    async def send_and_poll(
        self, connection_id: str, text: str, last_seq: int | None = None
    ) -> str:
        """A client sent text on long polling: queue it, then answer at once like a poll.

        This request is the connection's poll now: a held poll ends (``superseded``, empty) and
        this answer carries the new message, plus ``queued_seq`` saying which seq it got.
        """
        seq = self.receive(connection_id, text, Transport.LONG_POLLING)
        answer = await self.poll(connection_id, last_seq, hold=0)
        return answer[:-1] + f',"queued_seq":{seq}}}'

    def _poll_answer(self, conn: Connection, last_seq: int | None) -> str | None:
        batch = self._after(conn, conn.acked)
        if not batch:
            return None
        if last_seq is None:  # no resume point: once sent counts as delivered
            self._ack(conn, batch[-1][0])
        conn.delivered += len(batch)
        self._counters["events_sent"] += len(batch)
        return events.poll_batch(conn.id, [data for _, data in batch])

    def _timeout_answer(self, conn: Connection, reason: str) -> str:
        return events.encode(
            events.make_event(
                "timeout", conn.id, reason=reason, poll_timeout=self.settings.poll_timeout
            )
        )

    # -- streams (SSE and WebSocket) ------------------------------------------------------------

    def open_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
    ) -> Stream:
        """Attach a stream: resume ``connection_id`` after ``last_seq``, or start a new connection.

        An unknown or expired id (or another transport's) starts a new connection, and its
        ``connected`` event says ``"resumed": false`` and ``"resume_failed":
        "unknown_connection"``.
        A stream still attached to the resumed connection is ended (``superseded``): the new one
        takes over and replays everything after ``last_seq`` (everything unacknowledged if absent).
        """
        with self._lock:
            conn = self._conns.get(connection_id) if connection_id is not None else None
            if conn is not None and conn.transport is not transport:
                conn = None
            extra: dict[str, Any] = {}
            if conn is None:
                if connection_id is not None:
                    extra["resume_failed"] = UnknownConnection.code
                conn = self._create(transport)
                resumed = False
            else:
                self._refuse_if_closing()
                resumed = True
                if last_seq is not None:
                    self._ack(conn, last_seq)
                conn.released = conn.acked  # everything after the resume point goes out again
                if conn.waiter is not None:
                    self._end(conn.waiter, "superseded")
            stream = Stream(self, conn)
            conn.waiter = stream
            conn.detached_at = None
            conn.last_seen = self._clock()
            point = conn.acked
            connected = events.make_event(
                "connected",
                conn.id,
                resumed=resumed,
                transport=transport.value,
                last_seq=point,
                heartbeat_interval=self.settings.heartbeat_interval,
                resume_grace=self.settings.resume_grace,
                **extra,
            )
            stream.connected = Outgoing(events.encode(connected), f"{conn.id}:{point}")
            return stream

    def _take(self, stream: Stream) -> list[Outgoing] | None:
        """What the stream should write now, marked as written; ``None`` when it must end."""
        with self._lock:
            if stream.ended is not None:
                return None
            conn = stream.conn
            out = list(stream.outbox)
            stream.outbox.clear()
            batch = self._after(conn, conn.released)
            if batch:
                conn.released = batch[-1][0]
                conn.delivered += len(batch)
                self._counters["events_sent"] += len(batch)
                prefix = conn.id + ":"
                out.extend(Outgoing(data, prefix + str(seq)) for seq, data in batch)
                self._trim(conn)
            return out

    def _heartbeat(self, stream: Stream) -> Outgoing | None:
        with self._lock:
            if stream.ended is not None:
                return None
            conn = stream.conn
            conn.heartbeats += 1
            self._counters["heartbeats_sent"] += 1
            return Outgoing(events.heartbeat_event(conn.id, conn.heartbeats))

    def _detach(self, stream: Stream) -> None:
        with self._lock:
            if stream.ended is None:
                stream.ended = "closed"
            conn = stream.conn
            if conn.waiter is stream:
                conn.waiter = None
                conn.detached_at = conn.last_seen = self._clock()

    # -- cleanup --------------------------------------------------------------------------------

    def reap(self) -> int:
        """Remove connections past their expiry; return how many. The reaper task calls this."""
        now = self._clock()
        poll_expiry = self.settings.effective_poll_expiry
        grace = self.settings.resume_grace
        with self._lock:
            expired = [
                conn
                for conn in self._conns.values()
                if conn.waiter is None
                and (
                    now - conn.last_seen > poll_expiry
                    if conn.transport is Transport.LONG_POLLING
                    else conn.detached_at is not None and now - conn.detached_at > grace
                )
            ]
            for conn in expired:
                del self._conns[conn.id]
            self._counters["connections_expired"] += len(expired)
        return len(expired)

    def _reap_interval(self) -> float:
        shortest = min(self.settings.effective_poll_expiry, self.settings.resume_grace or 0.25)
        return min(1.0, max(0.05, shortest / 5))

    async def _reap_forever(self) -> None:
        interval = self._reap_interval()
        while True:
            await asyncio.sleep(interval)
            self.reap()

    # -- monitoring -----------------------------------------------------------------------------

    def stats(self, *, list_limit: int = 1000) -> dict[str, Any]:
        """Counts and a per-connection list for ``/stats``: short ids only, never message text."""
        with self._lock:
            by_transport = dict.fromkeys((t.value for t in Transport), 0)
            by_state = {"live": 0, "waiting": 0, "disconnected": 0}
            listed: list[dict[str, Any]] = []
            for conn in self._conns.values():
                by_transport[conn.transport.value] += 1
                state = conn.state
                by_state[state] += 1
                if len(listed) < list_limit:
                    listed.append(
                        {
                            "id": conn.short_id,
                            "transport": conn.transport.value,
                            "state": state,
                            "queued": conn.pending,
                            "delivered": conn.delivered,
                            "received": conn.received,
                            "last_seq": conn.last_seq,
                            "created": events.timestamp(conn.created),
                            "last_seen": events.timestamp(
                                time.time() - (self._clock() - conn.last_seen)
                            ),
                        }
                    )
            return {
                "connections": by_transport,
                "states": by_state,
                "total": len(self._conns),
                **self._counters,
                "uptime": round(self._clock() - self._started, 3),
                "connection_list": listed,
                "connection_list_truncated": len(self._conns) > len(listed),
            }


class Stream(_Waiter):
    """A stream (SSE or WebSocket) attached to a connection; made by :meth:`Hub.open_stream`.

    Iterate :meth:`events` and write each item; call :meth:`close` when the socket is gone (in a
    ``finally``). The iteration ends by itself when another stream takes over (``ended ==
    "superseded"``) or the server shuts down (``"shutdown"``).
    """

    __slots__ = ("_hub", "connected", "outbox")

    def __init__(self, hub: Hub, conn: Connection) -> None:
        super().__init__(conn)
        self._hub = hub
        self.connected = Outgoing("")
        self.outbox: list[Outgoing] = []  # non-durable events for this stream only (errors)

    @property
    def connection_id(self) -> str:
        return self.conn.id

    async def events(self) -> AsyncIterator[Outgoing]:
        """``connected``, then durable events in seq order, with heartbeats when due."""
        async for batch in self.batches():
            for item in batch:
                yield item

    async def batches(self) -> AsyncIterator[list[Outgoing]]:
        """:meth:`events`, a batch at a time: all that is ready, so that a writer can send a
        burst in one write (one system call instead of one per event)."""
        hub = self._hub
        loop = asyncio.get_running_loop()
        interval = hub.settings.heartbeat_interval
        yield [self.connected]
        next_beat = loop.time() + interval
        # One timer per heartbeat, not one armed and cancelled around every wait: that timer
        # (and the heap work behind it) was a visible share of each push (docs/benchmarks.md).
        timer = loop.call_at(next_beat, self.wakeup.set)
        try:
            while True:
                # Clear before taking: a publish after the take sets it again, so none is missed.
                self.wakeup.clear()
                batch = hub._take(self)
                if batch is None:
                    return
                now = loop.time()
                if now >= next_beat:
                    beat = hub._heartbeat(self)
                    if beat is None:
                        return
                    batch.append(beat)
                    next_beat += interval
                    if next_beat <= now:  # fell behind (a blocked writer): don't send a burst
                        next_beat = now + interval
                    timer.cancel()
                    timer = loop.call_at(next_beat, self.wakeup.set)
                if batch:
                    yield batch
                    continue
                await self.wakeup.wait()
        finally:
            timer.cancel()

    def receive(self, text: str) -> int:
        """The client sent ``text`` on this stream: queue its echo, return the seq."""
        return self._hub.receive(self.conn.id, text, self.conn.transport)

    def send_error(self, code: str, detail: str) -> bool:
        """Queue an ``error`` event for this stream only (not durable, never replayed).

        Returns ``False`` when ``MAX_UNSENT_ERRORS`` are already waiting: a client that keeps
        sending bad frames without reading is not worth more memory, and the caller should close.
        """
        event = events.encode(events.error_event(self.conn.id, code, detail))
        with self._hub._lock:
            if len(self.outbox) >= MAX_UNSENT_ERRORS:
                return False
            self.outbox.append(Outgoing(event))
            self._hub._notify(self)
            return True

    def close(self) -> None:
        """The socket is gone: detach, so the connection waits out its resume grace."""
        self._hub._detach(self)
