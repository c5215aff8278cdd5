"""The packet lens in the notebook: what crossed the relay, as marks on a time axis.

One row per connection and direction (up: client to server, down: server to client); each mark
is one thing the connection said (:mod:`transport_demo.lab.dissect`): a TCP SYN/FIN/RST, an HTTP
request or response or chunk, a Server-Sent Event, a WebSocket frame, an HTTP/2 frame, a TLS
record, a QUIC datagram's headers (the relay's UDP half, read back from the file). Hovering
shows its summary (request line, status, SSE id and type and seq, WebSocket opcode, FIN, mask,
length, seq);
clicking shows its bytes, hex and text. Filters choose the connection and the kinds shown.

::

    with network(server, capture="lesson.pcapng") as net:
        ...                                 # clients connect to net.url
    TimelineWidget(net)                     # also while the relay still runs (then: refresh())

Made with anywidget, like :mod:`transport_demo.widgets.browser`. The page never renders what a
connection carried as HTML: every text goes in with ``textContent`` (or an element's ``title``),
so a message ``<img src=x onerror=…>`` appears as those characters.

The download button hands the page the capture file through the widget's own channel (base64 in
a trait, asked for by a click), so it works wherever the widget shows: JupyterLab on a laptop, on
JupyterHub or Binder behind their proxies, with no file URL to get right. Up to
:data:`DOWNLOAD_LIMIT` bytes; a bigger file is named, to fetch from the file browser.

A capture of a TLS server (``start_server(https=True)``) is read inside TLS when the session's
secrets are given: ``TimelineWidget(net, keylog="lesson.keys")``, a key log written by the client's
``ssl.SSLContext.keylog_filename`` or the server's ``SSLKEYLOGFILE``; its HTTP/2 frames then show
(:mod:`transport_demo.lab.keylog`). The file is read again at each :meth:`refresh`.

Bounded: at most ``limit`` marks (the earliest, with a note saying how many were left out) and
``bytes_shown`` bytes of each mark's bytes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anywidget
import traitlets

from ..lab.capture_file import udp_conversations
from ..lab.dissect import KINDS, Conversation, Record, with_secrets
from ..lab.keylog import read_keylog

if TYPE_CHECKING:
    from ..lab.capture import Capture

__all__ = ["BYTES_SHOWN", "DOWNLOAD_LIMIT", "MARK_LIMIT", "TimelineWidget", "hex_dump"]

JS = Path(__file__).with_name("js")
MARK_LIMIT = 1000
"""Marks shown at most (the earliest): the page stays quick and the widget's state small."""
BYTES_SHOWN = 256
"""Bytes of each mark shown when it is clicked (a WebSocket frame's unmasked text in full,
up to 2,000 characters)."""
DOWNLOAD_LIMIT = 16 << 20
"""The biggest capture the download button hands over through the widget (bytes)."""
_TEXT_SHOWN = 2000


class _HasTimeline(Protocol):
    def timeline(self) -> list[Conversation]: ...


@cache
def _read(name: str) -> str:
    return (JS / name).read_text(encoding="utf-8")


def hex_dump(data: bytes, limit: int = BYTES_SHOWN) -> str:
    """``data`` as Wireshark's bytes pane shows it: offset, 16 bytes in hex, the same as text
    (``.`` for a byte that is not printable ASCII); at most ``limit`` bytes, then a note."""
    lines = []
    for at in range(0, min(len(data), limit), 16):
        row = data[at : at + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{at:04x}  {row.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)


def _detail(conversation: Conversation, record: Record, t: float) -> str:
    direction = "client → server" if record.up else "server → client"
    segments = ", ".join(str(i) for i in record.segments)
    lines = [
        f"{conversation.label}, {direction}, at {t * 1000:.1f} ms, segment(s) {segments}",
        record.summary,
    ]
    text = record.fields.get("text")
    if isinstance(text, str) and record.fields.get("masked"):
        lines.append(f"unmasked: {text[:_TEXT_SHOWN]}")
    elif isinstance(text, str) and record.fields.get("rsv1"):
        lines.append(f"inflated: {text[:_TEXT_SHOWN]}")
    elif isinstance(record.fields.get("data"), str):
        lines.append(f"data: {record.fields['data'][:_TEXT_SHOWN]}")
    if record.data:
        lines += ["", hex_dump(record.data)]
    return "\n".join(lines)


def marks_of(
    conversations: Sequence[Conversation], limit: int = MARK_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """Every record as a mark for the page, in time order (at most ``limit``), and how many
    were left out. ``t`` is seconds since the first record."""
    ordered = sorted(
        (
            (record.at, c.number, i, c, record)
            for c in conversations
            for i, record in enumerate(c.records)
        ),
        key=lambda item: item[:3],
    )
    start = ordered[0][0] if ordered else 0.0
    marks = [
        {
            "conn": conversation.number,
            "up": record.up,
            "t": record.at - start,
            "kind": record.kind,
            "summary": record.summary,
            "detail": _detail(conversation, record, record.at - start),
            "seq": record.fields.get("seq"),
        }
        for at, _, _, conversation, record in ordered[:limit]
    ]
    return marks, max(0, len(ordered) - limit)


class TimelineWidget(anywidget.AnyWidget):
    """The timeline of a capture: ``TimelineWidget(net)`` for a
    :class:`~transport_demo.lab.network.Network` made with ``capture=``, or a
    :class:`~transport_demo.lab.capture.Capture`, or a list of conversations.

    ``kinds`` (any of :data:`~transport_demo.lab.dissect.KINDS`) and ``connection``
    (a connection's number, 0 for all) are the filters, set from the page or from code;
    :meth:`shown` is what they let through; :meth:`refresh` reads the capture again.
    """

    _esm = _read("timeline.js")
    _css = _read("timeline.css")

    title = traitlets.Unicode("").tag(sync=True)
    marks: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    connections: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    # the filters: the page sets them, and so can a cell
    kinds: traitlets.List[str] = traitlets.List(list(KINDS)).tag(sync=True)
    connection = traitlets.Int(0).tag(sync=True)
    # the download: the page counts its requests, the kernel answers with the file
    file_name = traitlets.Unicode("").tag(sync=True)
    file_request = traitlets.Int(0).tag(sync=True)
    file_data: traitlets.Dict[str, Any] = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        source: _HasTimeline | Sequence[Conversation],
        *,
        limit: int = MARK_LIMIT,
        title: str = "What crossed the relay",
        keylog: str | Path | None = None,
    ) -> None:
        """``limit``: the most marks shown (the earliest ones); ``keylog``: a TLS key log, to
        read what TLS connections carried."""
        super().__init__(title=title)
        self._source = source
        self._limit = limit
        self._keylog = keylog
        # a Network's capture, or a Capture itself (duck-typed: importing them needs scapy)
        capture: Any = getattr(source, "capture", source)
        self._capture: Capture | None = capture if hasattr(capture, "file_bytes") else None
        if self._capture is not None:
            self.file_name = Path(self._capture.path).name
        self.refresh()

    def refresh(self) -> None:
        """Read the capture again (for a relay that is still carrying traffic)."""
        if isinstance(self._source, Sequence):
            conversations = list(self._source)
        else:
            conversations = self._source.timeline()
        if self._keylog is not None:
            conversations = with_secrets(conversations, read_keylog(self._keylog))
        if self._capture is not None and not isinstance(self._source, Sequence):
            # the relay's UDP half (QUIC) is only in the file: read back, numbered after TCP's
            data = self._capture.file_bytes()
            conversations += udp_conversations(data, len(conversations) + 1)
        marks, left_out = marks_of(conversations, self._limit)
        self.connections = [{"number": c.number, "label": c.label} for c in conversations]
        self.marks = marks
        notes = []
        if left_out:
            notes.append(f"the first {len(marks)} records shown, {left_out} more left out")
        if getattr(self._capture, "truncated", False):
            notes.append("the capture stopped keeping segments (its memory limit)")
        if getattr(self._capture, "full", False):
            notes.append("the capture file is full: later packets are not in it")
        self.note = "; ".join(notes)

    def shown(self) -> list[dict[str, Any]]:
        """The marks the filters (``kinds``, ``connection``) let through, in time order."""
        return [
            mark
            for mark in self.marks
            if mark["kind"] in self.kinds and self.connection in (0, mark["conn"])
        ]

    @traitlets.observe("file_request")
    def _send_file(self, change: dict[str, Any]) -> None:
        capture = self._capture
        if capture is None:
            self.file_data = {"serial": change["new"], "error": "no capture file"}
            return
        size = Path(capture.path).stat().st_size
        if size > DOWNLOAD_LIMIT:
            self.file_data = {
                "serial": change["new"],
                "error": f"{size >> 20} MiB: open {capture.path} from the file browser",
            }
            return
        data = base64.b64encode(capture.file_bytes()).decode("ascii")
        self.file_data = {"serial": change["new"], "b64": data, "at": time.time()}
