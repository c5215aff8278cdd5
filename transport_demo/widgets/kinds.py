"""Each transport's live widget: the widgets' registration against the transport table
(:mod:`transport_demo.server.transports`); the dashboard shows one of each transport in its
``TRANSPORTS``. The browser-side widgets (:mod:`.browser`, on anywidget, imported lazily) are not
registered here: their client is the page's, not a :class:`TransportWidget`."""

from __future__ import annotations

from ..server.protocol import Transport
from .client_widget import TransportWidget
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget
from .webtransport import WebTransportWidget

__all__ = ["WIDGETS"]

WIDGETS: dict[Transport, type[TransportWidget]] = {
    Transport.LONG_POLLING: LongPollWidget,
    Transport.SSE: SSEWidget,
    Transport.WEBSOCKET: WebSocketWidget,
    Transport.WEBTRANSPORT: WebTransportWidget,
}
