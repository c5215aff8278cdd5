"""Every transport side by side (one widget each, from the transport table), with Start all /
Stop all."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..server.protocol import Transport
from ..server.transports import TRANSPORTS
from .client_widget import TransportWidget
from .kinds import WIDGETS


class TransportDashboard(widgets.VBox):
    """``TransportDashboard(server.url)``: one client per transport; ``d.start()``,
    ``d.send(text)`` (to all), ``d.stop()``; each widget by its transport's name with ``_`` for
    ``-`` (``d.long_polling``, ``d.sse``, ``d.websocket``), or ``d.by_transport[transport]``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.by_transport: dict[Transport, TransportWidget] = {
            transport: WIDGETS[transport](url, **options) for transport in TRANSPORTS
        }
        start_all = widgets.Button(description="Start all", button_style="success")
        stop_all = widgets.Button(description="Stop all")
        start_all.on_click(lambda _: self.start())
        stop_all.on_click(lambda _: self.stop())
        row = widgets.HBox(
            list(self.widgets), layout={"width": "100%", "align_items": "flex-start"}
        )
        super().__init__([widgets.HBox([start_all, stop_all]), row])

    def __getattr__(self, name: str) -> TransportWidget:
        # Only reached for names that are not attributes: a transport's widget by its name.
        for transport, widget in self.__dict__.get("by_transport", {}).items():
            if transport.value.replace("-", "_") == name:
                return widget  # type: ignore[no-any-return]
        raise AttributeError(name)

    @property
    def widgets(self) -> tuple[TransportWidget, ...]:
        return tuple(self.by_transport.values())

    def start(self) -> None:
        for widget in self.widgets:
            widget.start()

    def send(self, text: str) -> None:
        for widget in self.widgets:
            widget.send(text)

    def stop(self) -> None:
        for widget in self.widgets:
            widget.stop()
