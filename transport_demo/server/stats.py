"""The shape of ``/stats``, once for both stores: counts by transport and state, the counters,
and a list of connections by their first 8 characters (never a full id, never a text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .protocol import ConnectionState
from .transports import TABLE

__all__ = ["COUNTERS", "STATS_LIST_LIMIT", "StatsTally"]

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
"""The /stats counters, in the order /stats shows them (each process counts its own)."""

STATS_LIST_LIMIT = 1000
"""/stats lists at most this many connections (``connection_list_truncated`` says when more)."""


class StatsTally:
    """Counts connections as a store walks them, then answers ``/stats``."""

    def __init__(self) -> None:
        self.by_transport = dict.fromkeys((t.value for t in TABLE), 0)
        self.by_state = dict.fromkeys((s.value for s in ConnectionState), 0)
        self.listed: list[dict[str, Any]] = []

    def add(
        self, transport: str, state: ConnectionState, row: Callable[[], dict[str, Any]]
    ) -> None:
        """One connection; ``row`` makes its list entry (called only while the list has room)."""
        self.by_transport[transport] += 1
        self.by_state[state.value] += 1
        if len(self.listed) < STATS_LIST_LIMIT:
            self.listed.append(row())

    def answer(
        self, counters: dict[str, int], uptime: float, client_addresses: int, **extra: Any
    ) -> dict[str, Any]:
        """The ``/stats`` body: counts, ``counters``, ``uptime``, the list, then ``extra``."""
        total = sum(self.by_transport.values())
        return {
            "connections": self.by_transport,
            "states": self.by_state,
            "total": total,
            **counters,
            "uptime": round(uptime, 3),
            "connection_list": self.listed,
            "connection_list_truncated": total > len(self.listed),
            "client_addresses": client_addresses,
            **extra,
        }
