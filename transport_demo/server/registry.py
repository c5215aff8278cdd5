"""The memory store: which connections exist, which poll or stream waits on each, and the lock.

:class:`Registry` is the part of the memory hub that its waiters use — a held long poll
(:class:`~transport_demo.server.held_polls.MemoryPollSteps`) and a stream
(:mod:`transport_demo.server.stream`) — through its public methods (``lock``, ``find``,
``lookup``, ``create``, ``attach``, ``release``, ``end``, ``append``, ``count``, ``now``); its
subclass :class:`~transport_demo.server.hub.Hub` adds the rest of the store interface
(:class:`~transport_demo.server.delivery.Delivery`), publishing, the reaper and ``/stats``. The
rules of one connection are the sans-I/O core's (:mod:`transport_demo.server.connection`).

Threading: every method that changes connections or waiters is called with ``lock`` held (or
takes it); ``__len__`` and ``__contains__`` read without it (a size or a membership test of a
dict, atomic in CPython). Waking a waiter crosses to the server's loop
(:mod:`transport_demo.server.wakeups`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .admission import Admission
from .connection import Connection, Limits, MemoryStore
from .delivery import AttachedStream, Delivery
from .errors import (
    RateLimited,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    UnknownConnection,
)
from .protocol import ConnectionState, EndReason, EventType, Transport
from .settings import Settings
from .waiters import Waiter
from .wakeups import Wakeups

__all__ = ["Registry"]

S = TypeVar("S", bound=AttachedStream)


class Registry(Delivery[Waiter, S]):
    """Connections and the waiter attached to each; see the module docstring.

    ``clock`` is the monotonic clock used for expiry (tests pass a fake one); connections live in
    a :class:`~transport_demo.server.connection.MemoryStore`. ``S`` is the stream class.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        lock = threading.Lock()
        """Guards every connection and waiter; held briefly, never across an await."""
        super().__init__(settings if settings is not None else Settings(), lock, clock=clock)
        self.lock: threading.Lock = lock
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
        self._wakeups = Wakeups(lock)

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

    def state_of(self, connection_id: str) -> ConnectionState:
        """``live``, ``waiting`` or ``disconnected``; raises :class:`UnknownConnection`."""
        with self.lock:
            conn = self.find(connection_id)
            return conn.state(attached=conn.id in self._waiters)

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
        :class:`~transport_demo.server.errors.ServerShuttingDown`."""
        self.check_ready()
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

    def wake(self, waiter: Waiter) -> None:
        self._wakeups.notify(waiter)

    def attach(self, conn: Connection, waiter: Waiter) -> None:
        """``waiter`` now waits on ``conn``; whatever waited before ends, ``superseded``."""
        self.check_ready()
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

    # -- durable events ---------------------------------------------------------------------------

    def append(self, conn: Connection, event_type: EventType, text: str) -> int:
        """Store a durable event on ``conn`` (call with ``lock`` held) and wake its waiter."""
        seq = conn.append(event_type, text, wall=time.time())
        waiter = self._waiters.get(conn.id)
        if waiter is not None:
            self._wakeups.notify(waiter)
        return seq

    async def _aappend_echo(
        self, connection_id: str, event_type: EventType, text: str, transport: Transport, wake: bool
    ) -> int:
        # ``wake`` is not needed here: nothing awaits between this append and the poll that
        # supersedes a held one (asend_and_poll), so the held poll wakes to find itself ended.
        with self.lock:
            self.check_ready()
            conn = self.find(connection_id, transport)
            try:
                self._admission.rates.take(conn.id, self._clock())
            except RateLimited:
                self._counters["rate_limited"] += 1
                raise
            seq = self.append(conn, event_type, text)
            conn.received += 1
            conn.last_seen = self._clock()
            return seq
