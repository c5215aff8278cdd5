"""Classroom mode: the instructor's machine serves the room, students' browsers join.

``start_classroom()`` (or ``start_server(classroom=True)``, or ``python -m transport_demo
--classroom``) listens on every interface, finds the machine's LAN address (:mod:`.lan`: no packet
is sent), allows exactly that origin (never ``null``), turns the per-address and per-connection
limits on (:data:`~transport_demo.settings.CLASSROOM_DEFAULTS`), and gives the join URL and a QR
code of it: in the notebook, and at ``/join`` for the projector. The live class view is
:class:`transport_demo.widgets.ClassroomView`.

The QR code needs ``segno`` (the ``classroom`` and ``notebooks`` extras); without it everything
works and the URL is shown as text.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from .protocol import Transport
from .settings import Settings

if TYPE_CHECKING:
    from .server import RunningServer
    from .widgets.classroom import ClassroomView

__all__ = ["Classroom", "join_page", "limits_text", "qr_svg", "qr_text", "start_classroom"]


def qr_svg(url: str, *, scale: int = 8, fit: bool = False) -> str | None:
    """A QR code of ``url`` as inline SVG (error correction M: readable from the back of a room
    off a projector), or ``None`` without segno. ``fit``: no fixed size, only a ``viewBox``, so
    that CSS can size it (the projector page)."""
    try:
        import segno
    except ImportError:
        return None
    code = segno.make(url, error="m", micro=False)
    return str(code.svg_inline(scale=scale, border=2, dark="#000", light="#fff", omitsize=fit))


def qr_text(url: str) -> str | None:
    """The QR code for a terminal (two rows of modules per character line), or ``None``."""
    try:
        import segno
    except ImportError:
        return None
    import io

    out = io.StringIO()
    segno.make(url, error="m", micro=False).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def limits_text(settings: Settings) -> list[str]:
    """The bounds a student can meet, as sentences (the join page and the CLI show them)."""

    def off(value: object) -> str:
        return "no limit" if value is None else str(value)

    return [
        f"connections per address: {off(settings.max_connections_per_address)}",
        f"texts per second per connection: {off(settings.max_messages_per_second)} "
        f"(bursts of {settings.message_burst})",
        f"text size: {settings.max_message_bytes} bytes (UTF-8)",
        f"connections in all: {settings.max_connections}",
    ]


def join_page(url: str, settings: Settings) -> str:
    """``/join``: the URL in large type and its QR code, for a projector."""
    svg = qr_svg(url, scale=10, fit=True)
    shown = html.escape(url)
    qr = (
        f'<div class="qr">{svg}</div>'
        if svg is not None
        else "<p>(Install segno for a QR code: <code>pip install segno</code>.)</p>"
    )
    limits = "".join(f"<li>{html.escape(line)}</li>" for line in limits_text(settings))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Join: {shown}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; text-align: center; margin: 2vh 2vw; }}
.url {{ font: 600 clamp(24px, 5vw, 72px)/1.2 ui-monospace, monospace; word-break: break-all; }}
.qr svg {{ width: min(60vh, 80vw); height: auto; shape-rendering: crispEdges; }}
.limits {{ color: #5d6677; font-size: 14px; display: inline-block; text-align: left; }}
</style></head>
<body>
<p>Open on your laptop or phone (same network):</p>
<p class="url"><a href="{shown}">{shown}</a></p>
{qr}
<div class="limits">Limits of this server:<ul>{limits}</ul></div>
</body></html>
"""


class Classroom:
    """A server for the room: ``join_url``, ``qr_svg``, ``view()``, ``broadcast(text)``,
    ``cut(transport)``, ``restart()``, ``stop()``. In a notebook it shows as the link and its QR
    code."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self._views: list[ClassroomView] = []

    @property
    def join_url(self) -> str:
        """What students open: ``http://<LAN address>:<port>/``."""
        return self.server.settings.join_url(self.server.port)

    @property
    def projector_url(self) -> str:
        """The page with the URL and the QR code in large, for the projector."""
        return self.join_url + "join"

    @property
    def qr_svg(self) -> str | None:
        return qr_svg(self.join_url)

    def broadcast(self, text: str) -> int:
        """Send ``text`` to every connection; returns how many took it."""
        return self.server.hub.broadcast(text)

    def cut(self, transport: Transport | str | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (all three: ``None``); see
        :meth:`~transport_demo.hub.Hub.disconnect_all`."""
        return self.server.hub.disconnect_all(None if transport is None else Transport(transport))

    def restart(self) -> None:
        """Restart the server on the same port, keeping its connections: every client resumes."""
        self.server.restart()

    def stop(self) -> None:
        """Stop the class views' sampling and the server."""
        for view in self._views:
            view.stop()
        self.server.stop()

    def view(self, **options: Any) -> ClassroomView:
        """The live class view widget (ipywidgets)."""
        from .widgets.classroom import ClassroomView

        view = ClassroomView(self.server, **options)
        self._views.append(view)
        return view

    def _repr_html_(self) -> str:
        url = html.escape(self.join_url)
        svg = self.qr_svg or "<p>(Install segno for a QR code.)</p>"
        return (
            f'<div><p style="font-size:20px">Students open <a href="{url}" target="_blank">'
            f"<code>{url}</code></a> — for the projector: "
            f'<a href="{html.escape(self.projector_url)}" target="_blank">/join</a></p>'
            f"{svg}</div>"
        )

    def __repr__(self) -> str:
        return f"<Classroom {self.join_url}>"


def start_classroom(port: int = 8000, **options: Any) -> Classroom:
    """``start_server(port, classroom=True, **options)`` for the room; see :class:`Classroom`.

    Options override the classroom defaults, e.g. ``join_host="10.1.2.3"`` when the machine has
    several networks, or ``max_connections_per_address=None`` behind a proxy.
    """
    from .server import start_server

    return Classroom(start_server(port, classroom=True, **options))
