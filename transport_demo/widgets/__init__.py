"""Live widgets: the Python clients, one per transport, a dashboard of those in ``TRANSPORTS``
and the class view; and, on anywidget, imported when first used: the browser's own clients
(``Browser…Widget``) and the packet lens's :class:`TimelineWidget`."""

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
from .webtransport import WebTransportWidget

_BROWSER = (
    "BrowserLongPollWidget",
    "BrowserSSEWidget",
    "BrowserWebSocketWidget",
    "BrowserWebTransportWidget",
    "BrowserWidget",
    "ConnectionLimitDemo",
)
_LAZY = {name: ".browser" for name in _BROWSER} | {"TimelineWidget": ".timeline"}

__all__ = [
    "WIDGETS",
    "BrowserLongPollWidget",
    "BrowserSSEWidget",
    "BrowserWebSocketWidget",
    "BrowserWebTransportWidget",
    "BrowserWidget",
    "ClassroomView",
    "ConnectionLimitDemo",
    "LongPollWidget",
    "SSEWidget",
    "TimelineWidget",
    "TransportDashboard",
    "TransportWidget",
    "WebSocketWidget",
    "WebTransportWidget",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'transport_demo.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
