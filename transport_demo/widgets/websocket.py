"""The WebSocket widget."""

from __future__ import annotations

from ..clients import WebSocketClient
from .client_widget import TransportWidget


class WebSocketWidget(TransportWidget):
    """A live WebSocket client: frames both ways, heartbeats, resumes with last_seq."""

    client_class = WebSocketClient
    title = "WebSocket"
