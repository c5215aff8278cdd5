"""What waits on a connection, and what it writes: the unit both stores' waiters share.

A :class:`Waiter` is a held long poll or (its subclass
:class:`~transport_demo.server.stream.Stream`) an
attached SSE or WebSocket stream of the memory hub; :class:`Outgoing` is one encoded event a
stream writes. Nothing here knows the hub: the registry (:mod:`transport_demo.server.registry`)
attaches,
wakes and ends waiters, and the stream and held-poll modules drive them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .protocol import EndReason, Transport
from .wakeups import Wakeup

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["MAX_UNSENT_ERRORS", "Outgoing", "Waiter", "Waiting"]

MAX_UNSENT_ERRORS = 64
"""Error events one stream may have waiting; past that the client is not reading, and the router
closes the socket."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event for a stream: its encoded JSON and, where a client can resume after it,
    ``resume_id`` (``"<connection_id>:<seq>"``, the SSE ``id:`` field)."""

    data: str
    resume_id: str | None = None


class Waiting:
    """What every waiter is, in either store: a held long poll or an attached stream.

    ``transport`` is its connection's; ``wakeup`` (a
    :class:`~transport_demo.server.wakeups.Wakeup`) is set on the server's loop when there may be
    something to take, when the waiter must stop, or when its timer (a hold, a heartbeat) is due;
    ``ended`` then says why it must stop. ``on_superseded`` is the router's: called once when
    another waiter takes the connection over.
    """

    __slots__ = ("ended", "on_superseded", "transport", "wakeup")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.wakeup = Wakeup()
        self.ended: EndReason | None = None
        self.on_superseded: Callable[[], None] | None = None

    def stop(self, reason: EndReason) -> None:
        """Say why this waiter must stop (the first reason given wins); waking it is the
        store's (on the server's loop)."""
        if self.ended is None:
            self.ended = reason
            if reason is EndReason.SUPERSEDED and self.on_superseded is not None:
                self.on_superseded()


class Waiter(Waiting):
    """A waiter of the memory hub: it holds its
    :class:`~transport_demo.server.connection.Connection`."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn.transport)
        self.conn = conn
