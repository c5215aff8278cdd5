"""Each transport's live widget: the widgets' registration against the transport table
(:mod:`transport_demo.server.transports`); the dashboard shows one of each."""

from __future__ import annotations

from ..server.protocol import Transport
from .client_widget import TransportWidget
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget

__all__ = ["WIDGETS"]

WIDGETS: dict[Transport, type[TransportWidget]] = {
    Transport.LONG_POLLING: LongPollWidget,
    Transport.SSE: SSEWidget,
    Transport.WEBSOCKET: WebSocketWidget,
}
