"""A live client as an ipywidget: Start, Stop, Send, a status, counters and a log.

The client runs on the widgets' background loop (:mod:`.runner`); its events land in a buffer and
are drawn at most every ``redraw_interval`` seconds, so a burst of a thousand messages is a handful
of redraws, not a thousand. Nothing is printed from the background: it only sets widget values.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import ipywidgets as widgets

from ..clients import BaseClient, ClientError
from ..clients.base import Event
from . import runner
from .log import received_at, render_counters, render_log, render_status


class TransportWidget(widgets.VBox):
    """Base class; see :class:`LongPollWidget`, :class:`SSEWidget`, :class:`WebSocketWidget`.

    Drive it by clicks or from code: ``w.start()``, ``w.send(text)``, ``w.stop()``; read
    ``w.status``, ``w.connection_id``, ``w.stats`` and ``w.events`` (the latest ``log_size``
    events as dicts). ``client_options`` go to the client (e.g. ``backoff_max=2``).
    """

    client_class: ClassVar[type[BaseClient]]
    title: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        log_size: int = 200,
        redraw_interval: float = 0.1,
        **client_options: Any,
    ) -> None:
        self.url = url
        self.client_options = client_options
        self.redraw_interval = redraw_interval
        self.client: BaseClient | None = None
        self.redraws = 0
        self._entries: deque[tuple[str, Event]] = deque(maxlen=log_size)
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._drawer: asyncio.Task[None] | None = None

        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop")
        self.send_button = widgets.Button(description="Send", icon="paper-plane")
        self.text = widgets.Text(
            placeholder="a message; Enter sends", continuous_update=False, layout={"flex": "1"}
        )
        self.status_html = widgets.HTML(render_status("idle", None))
        self.counters_html = widgets.HTML(render_counters({}))
        self.log_html = widgets.HTML(render_log([]))
        self.start_button.on_click(self._guard(lambda _: self.start()))
        self.stop_button.on_click(self._guard(lambda _: self.stop()))
        self.send_button.on_click(self._guard(lambda _: self._send_field()))
        self.text.observe(self._guard(lambda _: self._send_field()), names="value")
        super().__init__(
            [
                widgets.HTML(f"<b>{self.title}</b>"),
                self.status_html,
                widgets.HBox([self.start_button, self.stop_button]),
                widgets.HBox([self.text, self.send_button]),
                self.counters_html,
                self.log_html,
            ],
            layout={"border": "1px solid #d9dde5", "padding": "6px", "width": "100%"},
        )

    # -- driven from code or by clicks ----------------------------------------------------------

    def start(self) -> None:
        """Start the client (a new connection); does nothing if it is already running."""
        if self.client is not None and not self.client.closed:
            return
        self.client = self.client_class(self.url, on_event=self._on_event, **self.client_options)
        runner.run(self._start(self.client))

    async def _start(self, client: BaseClient) -> None:
        await client.start()
        if self._drawer is None or self._drawer.done():
            self._drawer = asyncio.create_task(self._draw_forever())
        self._dirty.set()

    def stop(self) -> None:
        """Close the client cleanly (WebSocket: close code 1000)."""
        if self.client is not None:
            runner.run(self.client.close())
            self._dirty.set()
            self._draw()

    def send(self, text: str) -> None:
        """Send ``text`` on this client's transport; a refusal shows in the widget."""
        if self.client is None:
            self._show_error("not_started", "Press Start first.")
            return
        try:
            runner.run(self.client.send(text))
        except ClientError as exc:
            self._show_error(exc.code, exc.detail)

    def cut(self) -> None:
        """Cut the connection on purpose, as a network fault would; watch it resume."""
        if self.client is not None:
            runner.run(self.client.drop_connection())

    @property
    def status(self) -> str:
        """idle, connecting, open, waiting (for a poll), reconnecting, closed or error."""
        return self.client.state if self.client is not None else "idle"

    @property
    def connection_id(self) -> str | None:
        return self.client.connection_id if self.client is not None else None

    @property
    def stats(self) -> dict[str, int]:
        return self.client.stats.as_dict() if self.client is not None else {}

    @property
    def events(self) -> list[Event]:
        """The latest events (server events and client notes), oldest first."""
        with self._lock:
            return [event for _, event in self._entries]

    def wait_until(self, predicate: Callable[[TransportWidget], bool], timeout: float = 10) -> bool:
        """Block until ``predicate(self)`` holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -- background -----------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        with self._lock:
            self._entries.append((received_at(), event))
        self._dirty.set()

    async def _draw_forever(self) -> None:
        while True:
            await asyncio.sleep(self.redraw_interval)
            if self._dirty.is_set():
                self._draw()
            if self.client is None or (self.client.closed and not self._dirty.is_set()):
                return

    def _draw(self) -> None:
        self._dirty.clear()
        with self._lock:
            entries = list(self._entries)
        self.redraws += 1
        try:
            self.status_html.value = render_status(self.status, self.connection_id)
            self.counters_html.value = render_counters(self.stats)
            self.log_html.value = render_log(entries)
        except Exception as exc:  # never let a drawing problem kill the client's task
            with contextlib.suppress(Exception):
                self.status_html.value = render_status("error", f"redraw failed: {exc!r}")

    # -- errors show in the widget, not in a log file -------------------------------------------

    def _show_error(self, code: str, detail: str) -> None:
        self._on_event(
            {"type": "error", "client": True, "error": code, "detail": detail, "timestamp": ""}
        )
        self._draw()

    def _guard(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        def guarded(arg: Any) -> None:
            try:
                callback(arg)
            except Exception as exc:  # a callback's error is invisible in JupyterLab otherwise
                self._show_error("callback_failed", f"{type(exc).__name__}: {exc}")

        return guarded

    def _send_field(self) -> None:
        text = self.text.value
        if text:
            self.text.value = ""
            self.send(text)
