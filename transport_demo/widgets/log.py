"""The pieces every transport widget shows: the event log (escaped HTML), counters and status.

Message text is always escaped: a message ``<img src=x onerror=alert(1)>`` appears literally.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

from ..server.protocol import ClientNote, ClientState, EventType

COLOURS = {
    "message": "#2f7de1",
    "user_message": "#2f7de1",
    "heartbeat": "#9b59b6",
    "timeout": "#e0a100",
    "connected": "#27a55a",
    "error": "#d93025",
    "reconnecting": "#f06d00",
    "reconnected": "#f06d00",
    "new_connection": "#f06d00",
    "gap": "#f06d00",
    "closed": "#888888",
}

STATUS_TEXT: dict[str, str] = {state: state.value for state in ClientState}
STATUS_TEXT[ClientState.WAITING] = "waiting for a poll"

STATUS_COLOURS: dict[str, str] = {
    ClientState.OPEN: "#d3f3dc",
    ClientState.WAITING: "#d3f3dc",
    ClientState.CONNECTING: "#fff0c7",
    ClientState.RECONNECTING: "#fff0c7",
    ClientState.ERROR: "#ffd9d6",
}


def received_at() -> str:
    """The client's clock, to the millisecond (shown beside the server's timestamp)."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


def event_text(event: dict[str, Any]) -> str:
    """What a log line says after its type and seq."""
    kind = event.get("type")
    if kind == EventType.ERROR:
        return f"{event.get('error')}: {event.get('detail', '')}"
    if kind == EventType.TIMEOUT:
        return str(event.get("reason", ""))
    if kind == EventType.CONNECTED:
        if event.get("resumed"):
            return "resumed"
        return "new connection" + (" (the old one was gone)" if event.get("resume_failed") else "")
    if kind in (ClientNote.RECONNECTING, ClientNote.NEW_CONNECTION, ClientNote.CLOSED):
        return str(event.get("detail", ""))
    if kind == ClientNote.GAP:
        return f"expected seq {event.get('expected')}, got {event.get('got')}"
    return str(event.get("message", ""))


def render_log(entries: Iterable[tuple[str, dict[str, Any]]]) -> str:
    """The log as HTML, newest last; every value from an event is escaped."""
    rows = []
    for at, event in entries:
        kind = str(event.get("type", "?"))
        colour = COLOURS.get(kind, "#c7ccd6")
        server_time = str(event.get("timestamp", ""))[11:]
        seq = event.get("seq")
        origin = " (client)" if event.get("client") else ""
        rows.append(
            f'<div class="td-entry" data-type="{html.escape(kind)}" '
            f'style="border-left:4px solid {colour};padding:1px 4px;margin:1px 0">'
            f'<span style="color:#5d6677">{html.escape(at)} srv {html.escape(server_time)}</span> '
            f"<b>{html.escape(kind)}{origin}</b>"
            f"{' #' + str(seq) if isinstance(seq, int) else ''} "
            f"{html.escape(event_text(event))}</div>"
        )
    return (
        '<div style="height:260px;overflow-y:auto;font:12px/1.35 monospace;'
        'white-space:pre-wrap;word-break:break-word;border:1px solid #d9dde5;padding:3px">'
        + "".join(rows)
        + "</div>"
    )


def render_counters(stats: dict[str, int]) -> str:
    shown = ("messages", "heartbeats", "timeouts", "reconnects", "duplicates", "gaps", "errors")
    cells = "".join(
        f'<span style="margin-right:10px">{name} <b>{stats.get(name, 0)}</b></span>'
        for name in shown
    )
    return f'<div style="font-size:12px">{cells}</div>'


def render_status(state: str, connection_id: str | None) -> str:
    background = STATUS_COLOURS.get(state, "#e4e7ee")
    text = STATUS_TEXT.get(state, state)
    cid = html.escape(connection_id or "")
    return (
        f'<span style="background:{background};border-radius:9px;padding:1px 8px;'
        f'font-weight:600">{html.escape(text)}</span> '
        f'<code style="font-size:11px">{cid}</code>'
    )
