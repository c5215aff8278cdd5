"""The registry: which connections exist, which poll or stream waits on each, and the lock.

:class:`Registry` is the part of the hub that the waiters use — a held long poll
(:mod:`transport_demo.server.held_polls`) and a stream (:mod:`transport_demo.server.stream`) —
through its public
methods (``lock``, ``find``, ``lookup``, ``create``, ``attach``, ``release``, ``wake``, ``end``,
``append``, ``receive``, ``count``, ``now``), never through its private state; only its subclass
:class:`~transport_demo.server.hub.Hub` touches that. The delivery rules themselves are the
sans-I/O core's (:mod:`transport_demo.server.connection`); :class:`~transport_demo.server.hub.Hub`
adds
publishing, the transports' operations, the reaper and ``/stats`` on top.

Threading: every method that changes connections or waiters is called with ``lock`` held (or takes
it); ``__len__`` and ``__contains__`` read without it (a size or a membership test of a dict, atomic
in CPython). Waking a waiter crosses to the server's loop (:mod:`transport_demo.server.wakeups`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .admission import Admission
from .connection import Connection, Limits, MemoryStore, check_text
from .errors import (
    RateLimited,
    ServerShuttingDown,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from .protocol import ConnectionState, EndReason, EventType, Transport
from .settings import Settings
from .transports import info
from .waiters import Waiter
from .wakeups import Wakeups

__all__ = ["COUNTERS", "Registry"]

COUNTERS = [
    "connections_opened",
    "connections_expired",
    "messages_received",
    "messages_published",
    "events_sent",
    "heartbeats_sent",
    "streams_resumed",
    "resumes_failed",
    "rate_limited",
    "refused_per_address",
    "waiters_cut",
]
"""The /stats counters, in the order /stats shows them."""


class Registry:
    """Connections and the waiter attached to each; see the module docstring.

    ``clock`` is the monotonic clock used for expiry (tests pass a fake one); connections live in
    a :class:`~transport_demo.server.connection.MemoryStore`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        limits = Limits(
            self.settings.max_queue,
            self.settings.replay_window,
            self.settings.max_message_bytes,
        )
        self._store = MemoryStore(limits)
        self._admission = Admission(
            self.settings.max_connections_per_address,
            self.settings.max_messages_per_second,
            self.settings.message_burst,
        )
        self._clock = clock
        self.lock = threading.Lock()
        """Guards every connection and waiter; held briefly, never across an await."""
        self._waiters: dict[str, Waiter] = {}  # connection id -> the poll or stream attached
        self._wakeups = Wakeups(self.lock)
        self._closing = False
        self._counters = dict.fromkeys(COUNTERS, 0)

    # -- connections ----------------------------------------------------------------------------

    def connection(self, connection_id: str) -> Connection:
        """The connection with this id (read it, don't change it); raises
        :class:`UnknownConnection`."""
        with self.lock:
            return self.find(connection_id)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, connection_id: object) -> bool:
        return isinstance(connection_id, str) and self._store.get(connection_id) is not None

    def refuse_if_closing(self) -> None:
        """Raise :class:`ServerShuttingDown` once :meth:`close` has begun."""
        if self._closing:
            raise ServerShuttingDown()

    # -- the interface for waiters (held_polls.py, stream.py); call with ``lock`` held ---------

    def find(self, connection_id: object, transport: Transport | None = None) -> Connection:
        """The connection, or :class:`UnknownConnection` (also for another transport's id)."""
        conn = self._store.get(connection_id) if isinstance(connection_id, str) else None
        if conn is None or (transport is not None and conn.transport is not transport):
            raise UnknownConnection()  # one answer for expired, never made, another's
        return conn

    def lookup(self, connection_id: str | None, transport: Transport) -> Connection | None:
        """The connection to resume, or ``None`` (unknown, expired or another transport's)."""
        conn = self._store.get(connection_id) if connection_id is not None else None
        return conn if conn is not None and conn.transport is transport else None

    def create(self, transport: Transport, address: str | None = None) -> Connection:
        """A new connection for a client at ``address`` (``None``: unknown, not counted); raises
        :class:`TooManyConnections`, :class:`TooManyConnectionsFromAddress` or
        :class:`ServerShuttingDown`."""
        self.refuse_if_closing()
        if len(self._store) >= self.settings.max_connections:
            raise TooManyConnections.of(self.settings.max_connections)
        try:
            self._admission.addresses.admit(address)
        except TooManyConnectionsFromAddress:
            self._counters["refused_per_address"] += 1
            raise
        conn = self._store.create(transport, self._clock(), wall=time.time())
        self._admission.addresses.add(conn.id, address)
        self._counters["connections_opened"] += 1
        return conn

    def now(self) -> float:
        """The hub's monotonic clock."""
        return self._clock()

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to one of the /stats counters."""
        self._counters[counter] += n

    def wake(self, waiter: Waiter) -> None:
        """Wake ``waiter`` on the hub's loop (from any thread)."""
        self._wakeups.notify(waiter)

    def end(self, waiter: Waiter, reason: EndReason) -> None:
        """Tell ``waiter`` to stop, and why (the first reason given wins)."""
        waiter.stop(reason)
        self._wakeups.notify(waiter)

    def attach(self, conn: Connection, waiter: Waiter) -> None:
        """``waiter`` now waits on ``conn``; whatever waited before ends, ``superseded``."""
        self.refuse_if_closing()
        previous = self._waiters.get(conn.id)
        if previous is not None:
            self.end(previous, EndReason.SUPERSEDED)
        self._waiters[conn.id] = waiter

    def release(self, waiter: Waiter) -> bool:
        """``waiter`` is done; returns whether it was still the one attached."""
        if self._waiters.get(waiter.conn.id) is waiter:
            del self._waiters[waiter.conn.id]
            return True
        return False

    def disconnect_all(self, transport: Transport | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (``None``: of all three); return how
        many. Any thread. For teaching: the room watches its clients reconnect and resume.

        The connections stay, so every client resumes with nothing lost. What each transport
        sees: a held long poll is answered at once, ``timeout`` with ``reason: "cut"`` (between
        polls there is nothing to cut; the next poll carries ``last_seq`` as always); an SSE
        stream's response ends, and the client reconnects with ``Last-Event-ID``; a WebSocket is
        closed with 1012 (IANA's "service restart": come back after a randomized delay), since an
        ASGI application cannot drop a TCP connection without a close frame.
        """
        with self.lock:
            cut = [
                waiter
                for waiter in self._waiters.values()
                if waiter.ended is None
                and (transport is None or waiter.conn.transport is transport)
            ]
            for waiter in cut:
                self.end(waiter, EndReason.CUT)
            self._counters["waiters_cut"] += len(cut)
        return len(cut)

    # -- durable events ---------------------------------------------------------------------------

    def append(self, conn: Connection, event_type: EventType, text: str) -> int:
        """Store a durable event on ``conn`` (call with ``lock`` held) and wake its waiter."""
        seq = conn.append(event_type, text, wall=time.time())
        waiter = self._waiters.get(conn.id)
        if waiter is not None:
            self._wakeups.notify(waiter)
        return seq

    def receive(self, connection_id: str, text: str, transport: Transport) -> int:
        """A client sent ``text``: queue its echo (``message``, on WebSocket ``user_message``).

        Raises :class:`RateLimited` past ``max_messages_per_second`` (nothing is queued then).
        """
        text = check_text(text, self.settings.max_message_bytes)
        with self.lock:
            self.refuse_if_closing()
            conn = self.find(connection_id, transport)
            try:
                self._admission.rates.take(conn.id, self._clock())
            except RateLimited:
                self._counters["rate_limited"] += 1
                raise
            event_type = info(transport).echo
            seq = self.append(conn, event_type, text)
            conn.received += 1
            conn.last_seen = self._clock()
            self._counters["messages_received"] += 1
            return seq

    def state_of(self, connection_id: str) -> ConnectionState:
        """``live``, ``waiting`` or ``disconnected``; raises :class:`UnknownConnection`."""
        with self.lock:
            conn = self.find(connection_id)
            return conn.state(attached=conn.id in self._waiters)
