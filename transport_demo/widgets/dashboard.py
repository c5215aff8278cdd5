"""The three transports side by side, with Start all / Stop all."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .client_widget import TransportWidget
from .longpoll import LongPollWidget
from .sse import SSEWidget
from .websocket import WebSocketWidget


class TransportDashboard(widgets.VBox):
    """``TransportDashboard(server.url)``: one client per transport; ``d.start()``,
    ``d.send(text)`` (to all three), ``d.stop()``; ``d.long_polling``, ``d.sse``,
    ``d.websocket`` are the three widgets."""

    def __init__(self, url: str, **options: Any) -> None:
        self.long_polling = LongPollWidget(url, **options)
        self.sse = SSEWidget(url, **options)
        self.websocket = WebSocketWidget(url, **options)
        start_all = widgets.Button(description="Start all", button_style="success")
        stop_all = widgets.Button(description="Stop all")
        start_all.on_click(lambda _: self.start())
        stop_all.on_click(lambda _: self.stop())
        row = widgets.HBox(
            list(self.widgets), layout={"width": "100%", "align_items": "flex-start"}
        )
        super().__init__([widgets.HBox([start_all, stop_all]), row])

    @property
    def widgets(self) -> tuple[TransportWidget, TransportWidget, TransportWidget]:
        return (self.long_polling, self.sse, self.websocket)

    def start(self) -> None:
        for widget in self.widgets:
            widget.start()

    def send(self, text: str) -> None:
        for widget in self.widgets:
            widget.send(text)

    def stop(self) -> None:
        for widget in self.widgets:
            widget.stop()
