"""Live widgets: the Python clients, one per transport, a dashboard of all three and the class
view; and the browser's own clients (``Browser…Widget``, on anywidget), imported when first used."""

from __future__ import annotations

import importlib
from typing import Any

from .classroom import ClassroomView
from .client_widget import TransportWidget
from .dashboard import TransportDashboard
from .kinds import WIDGETS
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget

_BROWSER = (
    "BrowserLongPollWidget",
    "BrowserSSEWidget",
    "BrowserWebSocketWidget",
    "BrowserWidget",
    "ConnectionLimitDemo",
)

__all__ = [
    "WIDGETS",
    "BrowserLongPollWidget",
    "BrowserSSEWidget",
    "BrowserWebSocketWidget",
    "BrowserWidget",
    "ClassroomView",
    "ConnectionLimitDemo",
    "LongPollWidget",
    "SSEWidget",
    "TransportDashboard",
    "TransportWidget",
    "WebSocketWidget",
]


def __getattr__(name: str) -> Any:
    if name not in _BROWSER:
        raise AttributeError(f"module 'transport_demo.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(".browser", __name__), name)
    globals()[name] = value
    return value
