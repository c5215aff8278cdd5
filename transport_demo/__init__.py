"""transport-demo: long polling, Server-Sent Events and WebSocket, live, for teaching.

The public API. Names are imported when first used, so that ``import transport_demo.clients`` (or
the protocol vocabulary) does not pull in FastAPI and uvicorn; widgets live in
:mod:`transport_demo.widgets` (so the server runs without ipywidgets).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("transport-demo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .classroom.room import Classroom, start_classroom
    from .server.app import create_app
    from .server.errors import (
        InvalidText,
        MessageTooLarge,
        QueueFull,
        RateLimited,
        ServerShuttingDown,
        TooManyConnections,
        TooManyConnectionsFromAddress,
        TransportDemoError,
        UnknownConnection,
    )
    from .server.hub import Hub
    from .server.launcher import PortInUseError, RunningServer, start_server, stop_all
    from .server.protocol import Transport
    from .server.settings import Settings

# name -> the module that defines it
_LAZY = {
    "create_app": "server.app",
    "Classroom": "classroom.room",
    "start_classroom": "classroom.room",
    "RateLimited": "server.errors",
    "TooManyConnectionsFromAddress": "server.errors",
    "Hub": "server.hub",
    "Transport": "server.protocol",
    "PortInUseError": "server.launcher",
    "RunningServer": "server.launcher",
    "start_server": "server.launcher",
    "stop_all": "server.launcher",
    "Settings": "server.settings",
    "InvalidText": "server.errors",
    "MessageTooLarge": "server.errors",
    "QueueFull": "server.errors",
    "ServerShuttingDown": "server.errors",
    "TooManyConnections": "server.errors",
    "TransportDemoError": "server.errors",
    "UnknownConnection": "server.errors",
}

__all__ = [
    "Classroom",
    "Hub",
    "InvalidText",
    "MessageTooLarge",
    "PortInUseError",
    "QueueFull",
    "RateLimited",
    "RunningServer",
    "ServerShuttingDown",
    "Settings",
    "TooManyConnections",
    "TooManyConnectionsFromAddress",
    "Transport",
    "TransportDemoError",
    "UnknownConnection",
    "__version__",
    "create_app",
    "start_classroom",
    "start_server",
    "stop_all",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transport_demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
