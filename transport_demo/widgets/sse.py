"""The Server-Sent Events widget."""

from __future__ import annotations

from ..clients import SSEClient
from .client_widget import TransportWidget


class SSEWidget(TransportWidget):
    """A live SSE client: the stream's events, heartbeats, and resumes with Last-Event-ID."""

    client_class = SSEClient
    title = "Server-Sent Events"
