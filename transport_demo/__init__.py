"""transport-demo: long polling, Server-Sent Events and WebSocket, live, for teaching.

The public API; widgets live in :mod:`transport_demo.widgets` (imported on demand, so the server
runs without ipywidgets).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .app import create_app
from .hub import Hub, Transport
from .server import PortInUseError, RunningServer, start_server, stop_all
from .settings import Settings

__all__ = [
    "Hub",
    "PortInUseError",
    "RunningServer",
    "Settings",
    "Transport",
    "__version__",
    "create_app",
    "start_server",
    "stop_all",
]
