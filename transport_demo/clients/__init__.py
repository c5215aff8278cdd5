"""Async clients, one per transport, with the same shape (see :class:`BaseClient`)."""

from __future__ import annotations

from .base import BaseClient, ClientError, ClientStats, Event
from .longpoll import LongPollClient
from .sse import SSEClient
from .websocket import WebSocketClient
from .webtransport import WebTransportClient

CLIENTS: dict[str, type[BaseClient]] = {
    LongPollClient.transport: LongPollClient,
    SSEClient.transport: SSEClient,
    WebSocketClient.transport: WebSocketClient,
    WebTransportClient.transport: WebTransportClient,
}

__all__ = [
    "CLIENTS",
    "BaseClient",
    "ClientError",
    "ClientStats",
    "Event",
    "LongPollClient",
    "SSEClient",
    "WebSocketClient",
    "WebTransportClient",
]
