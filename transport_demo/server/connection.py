"""The sans-I/O connection core: one connection's delivery rules, with no asyncio, no threads and
no clock of its own (every time is passed in). Tested synchronously (tests/test_connection.py).

Delivery invariants, per connection:

* Durable events get ``seq`` 1, 2, 3, ... with no gaps, and are stored encoded in ``buffer``: a
  replay sends exactly the bytes of the first delivery.
* ``acked`` is the client's resume point: everything up to it was received, and may be freed.
* ``released`` is how far the replay window may forget: for streams (SSE, WebSocket) the highest
  seq handed to a socket, for long polling the same as ``acked``. An event is freed when
  ``seq <= acked``, or when it is older than the last ``replay_window`` events *and* already
  released. So nothing accepted is dropped before it was at least written once.
* Pending (written to nobody yet, or for long polling not yet acknowledged) is
  ``last_seq - released``; it never exceeds ``max_queue``: a new event past that is refused with
  :class:`~transport_demo.server.errors.QueueFull`, never silently dropped.

Where connections live
----------------------
:class:`MemoryStore` keeps them in a dict, for the memory hub (:mod:`transport_demo.server.hub`).
The Redis store (:mod:`transport_demo.server.redis_store`) does not use this class: it keeps the
same rules in Lua scripts (:mod:`transport_demo.server.redis_scripts`). Both stores implement the
store interface of :class:`~transport_demo.server.delivery.Delivery`, the one layer above them
(docs/scaling.md); tests/test_store_parity.py holds the two rule sets to the same answers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import events
from .errors import InvalidText, MessageTooLarge, QueueFull
from .protocol import ConnectionState, EventType, Transport
from .transports import DeliveryKind, info

__all__ = [
    "MAX_BATCH_BYTES",
    "Connection",
    "Limits",
    "MemoryStore",
    "check_text",
    "first_bytes",
    "is_connection_id",
    "new_connection_id",
]

MAX_BATCH_BYTES = 256 * 1024
"""The most bytes of encoded events one write carries: a long poll's answer, a stream's batch.

A resume replays everything after the client's seq, and a full replay window of texts made of
control characters (each six bytes once JSON-escaped) is ~25 MB: written at once, every resume
(even one that never reads) would cost that much memory. Capped, a backlog leaves in batches of
at most this size (one event always goes, however large), each taken when the last was written:
a stream's writer waits while the socket is full, and a poll's client asks again with
``last_seq``."""

_CONNECTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds every connection keeps (from
    :class:`~transport_demo.server.settings.Settings`)."""

    max_queue: int = 1000
    replay_window: int = 1000
    max_message_bytes: int = 64 * 1024


def check_text(text: object, max_bytes: int) -> str:
    """``text`` if it is a string of valid Unicode within ``max_bytes`` of UTF-8; else raises
    :class:`InvalidText` or :class:`MessageTooLarge`."""
    if not isinstance(text, str):
        raise InvalidText("The text must be a string.")
    if len(text) * 4 > max_bytes:  # only then can the UTF-8 form be over the limit
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidText("The text is not valid Unicode (a lone surrogate).") from None
        if size > max_bytes:
            raise MessageTooLarge(
                f"The text is {size} bytes; the limit is {max_bytes} bytes (UTF-8)."
            )
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidText("The text is not valid Unicode (a lone surrogate).") from None
    return text


def is_connection_id(value: object) -> bool:
    """Whether ``value`` has the shape of an id this server makes (:func:`new_connection_id`: a
    lowercase uuid4). Anything else from a client is an unknown connection, refused before it
    names a key or a rate bucket (issue: a store keyed by arbitrary strings grows on demand)."""
    return (
        isinstance(value, str) and len(value) == 36 and _CONNECTION_ID.fullmatch(value) is not None
    )


def first_bytes(
    batch: list[tuple[int, str]], budget: int = MAX_BATCH_BYTES
) -> list[tuple[int, str]]:
    """The longest prefix of ``batch`` whose encoded events fit in ``budget`` bytes of UTF-8, and
    never less than one event (an event is never split, and one over the budget still goes)."""
    total = 0
    for index, (_, data) in enumerate(batch):
        total += len(data) if data.isascii() else len(data.encode("utf-8"))
        if total > budget and index:
            return batch[:index]
    return batch


def new_connection_id() -> str:
    """A fresh id: uuid4, 122 random bits from ``os.urandom``, so ids can't be guessed."""
    return str(uuid.uuid4())


class Connection:
    """One client connection's delivery state; see the module docstring for the invariants.

    ``now`` arguments are the caller's monotonic clock (expiry); ``wall`` arguments are Unix time
    (the timestamps events carry). Whether a poll or stream is attached is the hub's business:
    methods that depend on it take ``attached``.
    """

    __slots__ = (
        "acked",
        "buffer",
        "created",
        "delivered",
        "detached_at",
        "heartbeats",
        "id",
        "last_seen",
        "limits",
        "next_seq",
        "polled",
        "received",
        "released",
        "transport",
    )

    def __init__(
        self,
        connection_id: str,
        transport: Transport,
        now: float,
        *,
        wall: float,
        limits: Limits | None = None,
    ) -> None:
        self.id = connection_id
        self.transport = transport
        # Polled (acknowledged by the next poll) or streamed: the transport table says which.
        self.polled = info(transport).delivery is DeliveryKind.POLL
        self.limits = limits if limits is not None else Limits()
        self.created = wall
        self.last_seen = now
        self.next_seq = 1
        # A list, not a deque: an empty deque is ~760 bytes, an empty list 56, and most
        # connections are idle with nothing stored; _trim drops a prefix in one move.
        self.buffer: list[tuple[int, str]] = []
        self.acked = 0
        self.released = 0
        self.heartbeats = 0
        self.received = 0
        self.delivered = 0
        self.detached_at: float | None = None  # streams only: when the socket went away

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

    # -- durable events -------------------------------------------------------------------------

    def append(self, event_type: EventType, text: str, *, wall: float) -> int:
        """Store a durable event with the next seq and return the seq; raises
        :class:`QueueFull` (and changes nothing) when ``max_queue`` events are pending."""
        if self.pending >= self.limits.max_queue:
            raise QueueFull.of(self.pending, self.limits.max_queue)
        seq = self.next_seq
        self.next_seq = seq + 1
        self.buffer.append((seq, events.durable_event(event_type, self.id, seq, text, wall)))
        return seq

    def ack(self, last_seq: int) -> None:
        """The client has everything up to ``last_seq``: move the resume point, free what it can.

        A resume point past the newest seq (a forged or confused client) acknowledges everything.
        """
        point = min(last_seq, self.last_seq)
        if point > self.acked:
            self.acked = point
        if self.polled:
            self.released = self.acked
        self._trim()

    def after(self, seq: int) -> list[tuple[int, str]]:
        """Stored events with a seq above ``seq``, in order, as ``(seq, encoded)``."""
        buffer = self.buffer
        if not buffer or buffer[-1][0] <= seq:
            return []
        return buffer[max(0, seq + 1 - buffer[0][0]) :]

    def _trim(self) -> None:
        buffer, window = self.buffer, self.limits.replay_window
        acked, released, n = self.acked, self.released, len(buffer)
        drop = 0
        while drop < n and (
            buffer[drop][0] <= acked or (n - drop > window and buffer[drop][0] <= released)
        ):
            drop += 1
        if drop:
            del buffer[:drop]  # one move for the whole acknowledged prefix

    # -- what a poll or a stream writes ---------------------------------------------------------

    def poll_batch(self, last_seq: int | None) -> list[str]:
        """The encoded events a long poll answers with (empty: nothing to send yet), at most
        :data:`MAX_BATCH_BYTES` of them: the next poll gets the rest.

        With ``last_seq`` they stay stored until a later poll acknowledges them; without it (a
        client that does not resume) sending them counts as delivering them.
        """
        if last_seq is not None:
            self.ack(last_seq)
        batch = first_bytes(self.after(self.acked))
        if not batch:
            return []
        if last_seq is None:
            self.ack(batch[-1][0])
        self.delivered += len(batch)
        return [data for _, data in batch]

    def resume(self, last_seq: int | None) -> int:
        """A stream attaches: acknowledge ``last_seq`` if given, and send again everything after
        the resume point. Returns the resume point."""
        if last_seq is not None:
            self.ack(last_seq)
        else:
            # Free first what the window already let go (released, and older than the last
            # replay_window events): appends do not trim, and lowering released below would keep
            # it. The Redis scripts trim on every append; both then replay the same events
            # (tests/test_store_parity.py).
            self._trim()
        self.released = self.acked
        return self.acked

    def take_unsent(self) -> list[tuple[int, str]]:
        """For a stream: the stored events not yet handed to its socket, now marked as handed;
        at most :data:`MAX_BATCH_BYTES` of them (the caller takes again for the rest)."""
        batch = first_bytes(self.after(self.released))
        if batch:
            self.released = batch[-1][0]
            self.delivered += len(batch)
            self._trim()
        return batch

    def beat(self) -> int:
        """Count a heartbeat; returns its number."""
        self.heartbeats += 1
        return self.heartbeats

    # -- life cycle -----------------------------------------------------------------------------

    def state(self, *, attached: bool) -> ConnectionState:
        """``live`` (a poll or stream attached), ``waiting`` (long polling between polls) or
        ``disconnected`` (a stream was cut; in resume grace)."""
        if attached:
            return ConnectionState.LIVE
        if self.polled:
            return ConnectionState.WAITING
        return ConnectionState.DISCONNECTED

    def expired(self, now: float, *, attached: bool, poll_expiry: float, grace: float) -> bool:
        """Past its expiry: a long-polling connection unseen for ``poll_expiry`` seconds, or a
        stream's connection detached for longer than ``grace``. Never while attached."""
        if attached:
            return False
        if self.polled:
            return now - self.last_seen > poll_expiry
        return self.detached_at is not None and now - self.detached_at > grace

    def summary(self, *, attached: bool, now: float, wall: float) -> dict[str, Any]:
        """The row /stats shows: short id only, never message text."""
        return {
            "id": self.short_id,
            "transport": self.transport.value,
            "state": self.state(attached=attached).value,
            "queued": self.pending,
            "delivered": self.delivered,
            "received": self.received,
            "last_seq": self.last_seq,
            "created": events.timestamp(self.created),
            "last_seen": events.timestamp(wall - (now - self.last_seen)),
        }


class MemoryStore:
    """Connections in a dict, in this process: the default store and the fast path."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._conns: dict[str, Connection] = {}

    def create(self, transport: Transport, now: float, *, wall: float) -> Connection:
        conn = Connection(new_connection_id(), transport, now, wall=wall, limits=self.limits)
        self._conns[conn.id] = conn
        return conn

    def get(self, connection_id: str) -> Connection | None:
        return self._conns.get(connection_id)

    def remove(self, connection_id: str) -> None:
        self._conns.pop(connection_id, None)

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Connection]:
        # A live view: callers hold the hub's lock and never remove while iterating.
        return iter(self._conns.values())
