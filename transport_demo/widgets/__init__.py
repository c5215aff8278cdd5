"""Live ipywidgets clients, one per transport, and a dashboard of all three."""

from __future__ import annotations

from .client_widget import TransportWidget
from .dashboard import TransportDashboard
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget

__all__ = [
    "LongPollWidget",
    "SSEWidget",
    "TransportDashboard",
    "TransportWidget",
    "WebSocketWidget",
]
