"""What waits on a connection, and what it writes: the unit both stores' waiters share.

A :class:`Waiter` is a held long poll or (its subclass :class:`~transport_demo.stream.Stream`) an
attached SSE or WebSocket stream of the memory hub; :class:`Outgoing` is one encoded event a
stream writes. Nothing here knows the hub: the registry (:mod:`transport_demo.registry`) attaches,
wakes and ends waiters, and the stream and held-poll modules drive them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .protocol import EndReason

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["MAX_UNSENT_ERRORS", "Outgoing", "Waiter"]

MAX_UNSENT_ERRORS = 64
"""Error events one stream may have waiting; past that the client is not reading, and the router
closes the socket."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event for a stream: its encoded JSON and, where a client can resume after it,
    ``resume_id`` (``"<connection_id>:<seq>"``, the SSE ``id:`` field)."""

    data: str
    resume_id: str | None = None


class Waiter:
    """Whatever currently waits on a connection: a held long poll, or (subclass) a stream.

    ``wakeup`` is set by the hub (on the hub's loop) when there is something to take or when the
    waiter must stop; ``ended`` then says why.
    """

    __slots__ = ("conn", "ended", "on_superseded", "wakeup")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.wakeup = asyncio.Event()
        self.ended: EndReason | None = None
        # Called (under the hub's lock, on any thread) when another waiter takes over.
        self.on_superseded: Callable[[], None] | None = None
