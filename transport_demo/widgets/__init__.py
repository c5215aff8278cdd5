"""Live ipywidgets clients, one per transport, a dashboard of all three, and the class view."""

from __future__ import annotations

from .classroom import ClassroomView
from .client_widget import TransportWidget
from .dashboard import TransportDashboard
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget

__all__ = [
    "ClassroomView",
    "LongPollWidget",
    "SSEWidget",
    "TransportDashboard",
    "TransportWidget",
    "WebSocketWidget",
]
