"""The join page for the projector, its QR code, and the classroom limits as text: pure functions
of the settings and the join URL, used by the app (``/join``), the command line and the class view.

The QR code needs ``segno`` (the ``classroom`` and ``notebooks`` extras); without it everything
works and the URL is shown as text.
"""

from __future__ import annotations

import html

from .settings import Settings

__all__ = ["join_card", "join_page", "limits_text", "qr_svg", "qr_text"]


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


def join_card(join_url: str) -> str:
    """The join URL, a link to ``/join`` and the QR code, as a notebook shows a classroom server."""
    url = html.escape(join_url)
    svg = qr_svg(join_url) or "<p>(Install segno for a QR code.)</p>"
    return (
        f'<div><p style="font-size:20px">Students open <a href="{url}" target="_blank">'
        f"<code>{url}</code></a> — for the projector: "
        f'<a href="{html.escape(join_url + "join")}" target="_blank">/join</a></p>'
        f"{svg}</div>"
    )
