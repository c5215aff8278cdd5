"""The live class view: who is connected over which transport, messages per second, reconnects;
a box to broadcast to everyone; buttons to cut a transport or restart the server.

A daemon thread samples ``hub.stats()`` every ``interval`` seconds (a second by default: the
counters, not each message, so the cost does not grow with traffic) and sets the widgets' values;
it never prints (output from a thread lands in the wrong cell). It keeps running while the kernel
is idle, which is the point: the instructor watches the room, not a cell.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..server.join_page import qr_svg
from ..server.protocol import Transport
from ..server.transports import TRANSPORTS

if TYPE_CHECKING:
    from ..server.launcher import RunningServer

__all__ = ["ClassroomView", "Sample", "render_plot"]

COLOURS = {transport: row.colour for transport, row in TRANSPORTS.items()}
LABELS = {transport: row.label for transport, row in TRANSPORTS.items()}


@dataclass(frozen=True)
class Sample:
    """One reading of the server: connections by transport, rates since the previous reading,
    and running totals."""

    at: float  # seconds since the view started
    connections: dict[str, int] = field(default_factory=dict)
    live: int = 0
    messages_in_per_s: float = 0.0  # texts clients sent
    events_out_per_s: float = 0.0  # durable events written to clients
    reconnects: int = 0  # streams resumed + resumes that found their connection gone
    resumes_failed: int = 0
    cut: int = 0
    addresses: int = 0
    refused_per_address: int = 0  # new connections refused: the address held its maximum
    rate_limited: int = 0  # texts refused: sent too fast

    @property
    def total(self) -> int:
        return sum(self.connections.values())


def render_plot(samples: Iterable[Sample], width: int = 520, height: int = 170) -> str:
    """Connections per transport over time, as an inline SVG line chart (no plotting library)."""
    points = list(samples)
    pad_left, pad_bottom, pad_top = 36, 18, 8
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max([1] + [max(s.connections.values(), default=0) for s in points])
    t0 = points[0].at if points else 0.0
    span = max(1e-9, (points[-1].at - t0) if len(points) > 1 else 1.0)
    shown_span = points[-1].at - t0 if len(points) > 1 else 0.0
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="10">',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{pad_left + plot_w}" '
        f'y2="{pad_top + plot_h}" stroke="#c7ccd6"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 8}" text-anchor="end">{top}</text>',
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end">0</text>',
        f'<text x="{pad_left + plot_w}" y="{height - 4}" text-anchor="end">'
        f"last {shown_span:.{1 if shown_span < 10 else 0}f} s</text>",
    ]
    for index, transport in enumerate(TRANSPORTS):
        coords = " ".join(
            f"{pad_left + (s.at - t0) / span * plot_w:.1f},"
            f"{pad_top + plot_h - s.connections.get(transport.value, 0) / top * plot_h:.1f}"
            for s in points
        )
        colour = COLOURS[transport]
        if coords:
            parts.append(
                f'<polyline class="td-{transport.value}" fill="none" stroke="{colour}" '
                f'stroke-width="2" points="{coords}"/>'
            )
        last = points[-1].connections.get(transport.value, 0) if points else 0
        parts.append(
            f'<text x="{pad_left + 6 + index * 120}" y="{height - 4}" fill="{colour}">'
            f"{LABELS[transport]}: {last}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_numbers(sample: Sample | None) -> str:
    """The latest rates and totals, as a row of figures."""
    if sample is None:
        return "<div>waiting for the first sample…</div>"
    figures = [
        ("connections", str(sample.total)),
        ("live", str(sample.live)),
        ("addresses", str(sample.addresses)),
        ("texts in /s", f"{sample.messages_in_per_s:.1f}"),
        ("events out /s", f"{sample.events_out_per_s:.1f}"),
        ("reconnects", str(sample.reconnects)),
        ("resumes failed", str(sample.resumes_failed)),
        ("cut", str(sample.cut)),
        ("refused (per address)", str(sample.refused_per_address)),
        ("rate limited", str(sample.rate_limited)),
    ]
    cells = "".join(
        f'<span style="margin-right:14px">{html.escape(name)} <b>{value}</b></span>'
        for name, value in figures
    )
    return f'<div class="td-numbers" style="font-size:13px">{cells}</div>'


class ClassroomView(widgets.VBox):
    """``ClassroomView(server)``: the join URL and QR code, a live plot of connections per
    transport, rates and reconnects, a broadcast box, and buttons to cut each transport or restart
    the server.

    Drive it by clicks or from code: ``broadcast(text)``, ``cut(transport)``, ``restart()``,
    ``stop()``. ``samples`` holds the latest ``history`` readings (one each ``interval`` s).
    """

    def __init__(
        self,
        server: RunningServer,
        *,
        interval: float = 1.0,
        history: int = 180,
        show_qr: bool = True,
    ) -> None:
        self.server = server
        self.interval = max(0.1, interval)
        self.samples: deque[Sample] = deque(maxlen=history)
        self.redraws = 0
        self._lock = threading.Lock()  # guards samples
        self._sampling = threading.Lock()  # one sample at a time (the thread, or a caller)
        self._stopping = threading.Event()
        self._t0 = time.monotonic()
        self._previous: tuple[float, dict[str, Any]] | None = None

        url = server.settings.join_url(server.port)
        svg = qr_svg(url, scale=4) if show_qr else None
        self.join_html = widgets.HTML(
            f'<div style="display:flex;align-items:center;gap:12px">{svg or ""}<div>'
            f'Students open <a href="{html.escape(url)}" target="_blank">'
            f'<code style="font-size:16px">{html.escape(url)}</code></a><br>'
            f'projector: <a href="{html.escape(url)}join" target="_blank">/join</a></div></div>'
        )
        self.plot_html = widgets.HTML(render_plot([]))
        self.numbers_html = widgets.HTML(render_numbers(None))
        self.status_html = widgets.HTML("")
        self.broadcast_text = widgets.Text(
            placeholder="a message to everyone; Enter sends",
            continuous_update=False,
            layout={"flex": "1"},
        )
        self.broadcast_button = widgets.Button(description="Broadcast", icon="bullhorn")
        self.cut_buttons = {
            transport: widgets.Button(description=f"Cut {LABELS[transport]}", icon="cut")
            for transport in TRANSPORTS
        }
        self.restart_button = widgets.Button(
            description="Restart server", icon="refresh", button_style="warning"
        )
        self.broadcast_button.on_click(self._guard(lambda _: self._broadcast_field()))
        self.broadcast_text.observe(self._guard(lambda _: self._broadcast_field()), names="value")
        for transport, button in self.cut_buttons.items():
            button.on_click(self._guard(self._cutter(transport)))
        self.restart_button.on_click(self._guard(lambda _: self.restart()))
        super().__init__(
            [
                widgets.HTML("<b>Class view</b>"),
                self.join_html,
                self.plot_html,
                self.numbers_html,
                widgets.HBox([self.broadcast_text, self.broadcast_button]),
                widgets.HBox([*self.cut_buttons.values(), self.restart_button]),
                self.status_html,
            ],
            layout={"border": "1px solid #d9dde5", "padding": "6px", "width": "100%"},
        )
        self.sample()
        self._thread = threading.Thread(
            target=self._sample_forever, name="transport-demo-classroom", daemon=True
        )
        self._thread.start()

    # -- driven from code or by clicks ----------------------------------------------------------

    def broadcast(self, text: str) -> int:
        """Send ``text`` to every connection; returns how many took it."""
        count = self.server.hub.broadcast(text)
        self._say(f"broadcast to {count} connection{'s' * (count != 1)}")
        return count

    def cut(self, transport: Transport | str | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (all: ``None``); returns how many."""
        chosen = None if transport is None else Transport(transport)
        count = self.server.hub.disconnect_all(chosen)
        name = "every transport" if chosen is None else LABELS[chosen]
        where = " here, and every other process its own" if self.server.settings.redis_url else ""
        self._say(f"cut {count} of {name}{where}: watch them reconnect and resume")
        return count

    def restart(self) -> None:
        """Restart the server on the same port; its connections survive, clients resume."""
        self._say("restarting…")
        started = time.monotonic()
        self.server.restart()
        self._say(f"restarted in {time.monotonic() - started:.1f} s: watch the clients resume")

    def stop(self) -> None:
        """Stop sampling (the server keeps running)."""
        self._stopping.set()

    @property
    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    # -- sampling -------------------------------------------------------------------------------

    def sample(self) -> Sample:
        """Read the server's counters now, add a sample and redraw (any thread)."""
        with self._sampling:
            return self._sample()

    def _sample(self) -> Sample:
        now = time.monotonic()
        stats = self.server.hub.stats()
        rate_in = rate_out = 0.0
        if self._previous is not None:
            then, before = self._previous
            elapsed = max(1e-6, now - then)
            rate_in = (stats["messages_received"] - before["messages_received"]) / elapsed
            rate_out = (stats["events_sent"] - before["events_sent"]) / elapsed
        self._previous = (now, stats)
        sample = Sample(
            at=now - self._t0,
            connections=dict(stats["connections"]),
            live=stats["states"].get("live", 0),
            messages_in_per_s=rate_in,
            events_out_per_s=rate_out,
            reconnects=stats["streams_resumed"] + stats["resumes_failed"],
            resumes_failed=stats["resumes_failed"],
            cut=stats["waiters_cut"],
            addresses=stats["client_addresses"],
            refused_per_address=stats["refused_per_address"],
            rate_limited=stats["rate_limited"],
        )
        with self._lock:
            self.samples.append(sample)
            points = list(self.samples)
        self._draw(points)
        return sample

    def _sample_forever(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # shown in the widget; the loop goes on
                self._say(f"sampling failed: {type(exc).__name__}: {exc}", error=True)

    def _draw(self, points: list[Sample]) -> None:
        self.redraws += 1
        self.plot_html.value = render_plot(points)
        self.numbers_html.value = render_numbers(points[-1] if points else None)

    # -- messages in the widget, never printed --------------------------------------------------

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#d93025" if error else "#5d6677"
        with contextlib.suppress(Exception):
            self.status_html.value = (
                f'<span class="td-status" style="color:{colour}">{html.escape(text)}</span>'
            )

    def _guard(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        def guarded(arg: Any) -> None:
            try:
                callback(arg)
            except Exception as exc:  # a callback's error is invisible in JupyterLab otherwise
                self._say(f"{type(exc).__name__}: {exc}", error=True)

        return guarded

    def _cutter(self, transport: Transport) -> Callable[[Any], None]:
        def cut(_: Any) -> None:
            self.cut(transport)

        return cut

    def _broadcast_field(self) -> None:
        text = self.broadcast_text.value
        if text:
            self.broadcast_text.value = ""
            self.broadcast(text)
