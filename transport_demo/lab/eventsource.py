"""What a browser's ``EventSource`` does, step by step, in Python: to look at, not for production.

Two parts, both after the WHATWG HTML standard, §9.2 "Server-sent events":

* :class:`EventStreamParser` — §9.2.6 "Interpreting an event stream": an incremental parser that
  takes the body in chunks as they arrive (a chunk can end in the middle of a line, or between a
  CR and its LF) and yields what each complete line does.
* :func:`run` — the connection rules of §9.2.2/§9.2.3 as a browser applies them: send
  ``Last-Event-ID`` when there is one, reconnect after the *reconnection time* (which ``retry:``
  sets) when the stream ends or the network fails, and *fail the connection* — stop for good — on
  any status but 200 or any ``Content-Type`` but ``text/event-stream`` (so 204 is how a server
  says "stop"). Its answer is a timeline of what a browser would have done and dispatched.

Everything is synchronous, so it runs in a notebook cell without an event loop.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .wire import stop_reading_after

__all__ = [
    "DEFAULT_RECONNECTION_MS",
    "Dispatched",
    "EventStreamParser",
    "Line",
    "Timeline",
    "blocks",
    "run",
]

# "A reconnection time, in milliseconds. This must initially be an implementation-defined value,
# probably in the region of a few seconds." (§9.2.2)
DEFAULT_RECONNECTION_MS = 3000


@dataclass(frozen=True)
class Line:
    """One complete line of an event stream: ``kind`` is ``blank``, ``comment`` or ``field``."""

    kind: str
    name: str = ""
    value: str = ""


class EventStreamParser:
    """Incremental §9.2.6 line splitting: ``feed(chunk)`` returns the lines it completed.

    Lines end with CRLF, LF or CR; a leading byte order mark is dropped; bytes are decoded as
    UTF-8 (invalid sequences become U+FFFD), also when a character is split between chunks.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._after_cr = False

    def feed(self, chunk: bytes | str) -> list[Line]:
        """The lines completed by ``chunk`` (text is taken as already decoded)."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        lines: list[Line] = []
        for char in text:
            if self._after_cr:
                self._after_cr = False
                if char == "\n":  # the LF of a CRLF: the line already ended at the CR
                    continue
            if char in "\r\n":
                self._after_cr = char == "\r"
                lines.append(self._line(self._pending))
                self._pending = ""
            else:
                self._pending += char
        return lines

    @staticmethod
    def _line(line: str) -> Line:
        if line == "":
            return Line("blank")
        if line.startswith(":"):
            return Line("comment", value=line[1:])
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        return Line("field", name, value)


def blocks(text: str) -> list[dict[str, Any]]:
    """``text`` as blocks: one dict per blank-line-ended block that set a field — ``data`` (its
    lines joined with LF), ``id``, ``event``, ``retry`` (an int) — in the shape of the notebook
    exercise. Comments and unknown fields are skipped; an unfinished last block is dropped."""
    out: list[dict[str, Any]] = []
    block: dict[str, Any] = {}
    data: list[str] = []
    for line in EventStreamParser().feed(text):
        if line.kind == "blank":
            if data:
                block["data"] = "\n".join(data)
            if block:
                out.append(block)
            block, data = {}, []
        elif line.kind == "field":
            if line.name == "data":
                data.append(line.value)
            elif line.name in ("id", "event"):
                block[line.name] = line.value
            elif line.name == "retry" and line.value.isascii() and line.value.isdigit():
                block["retry"] = int(line.value)
    return out


@dataclass(frozen=True)
class Dispatched:
    """An event as a browser dispatches it: its type (``message`` unless ``event:`` named it),
    its ``data``, and ``lastEventId``."""

    type: str
    data: str
    last_event_id: str


@dataclass
class Timeline:
    """What :func:`run` saw and did, in order: ``notes`` are ``(seconds, text)``; ``events`` are
    the dispatched events; ``ready_state`` is where it ended (``CLOSED`` after a failure)."""

    url: str
    notes: list[tuple[float, str]] = field(default_factory=list)
    events: list[Dispatched] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    ready_state: str = "CONNECTING"

    def __repr__(self) -> str:
        lines = [f"EventSource({self.url!r})"]
        lines += [f"[{at:5.2f} s] {text}" for at, text in self.notes]
        lines.append(f"readyState: {self.ready_state}")
        return "\n".join(lines)


class _Connection:
    """The state an ``EventSource`` keeps across its connections."""

    def __init__(self, timeline: Timeline, reconnection_ms: int) -> None:
        self.timeline = timeline
        self.reconnection_ms = reconnection_ms
        self.last_event_id = ""  # the last event ID string (§9.2.2)
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        self.timeline.notes.append((round(time.monotonic() - self.started, 3), text))

    def read(self, lines: Iterator[Line]) -> None:
        """Interpret lines (§9.2.6) until they run out; dispatch complete events."""
        data: list[str] = []
        event_type = ""
        # §9.2.6 gives each stream a last event ID buffer "initialized to the empty string", and
        # each dispatch copies it into the last event ID string. Started empty, the first event of
        # a reconnection without an id would wipe the string; browsers carry it over (as the note
        # after the dispatch steps describes for events without an id), and so does this.
        id_buffer = self.last_event_id
        for line in lines:
            if line.kind == "comment":
                self.note(f"  comment :{line.value} (nothing dispatched)")
            elif line.kind == "blank":
                self.last_event_id = id_buffer
                if not data:
                    event_type = ""
                    continue
                kind = event_type or "message"
                event = Dispatched(kind, "\n".join(data), self.last_event_id)
                self.timeline.events.append(event)
                handler = "onmessage" if kind == "message" else f"addEventListener({kind!r})"
                shown = event.data if len(event.data) < 60 else event.data[:57] + "..."
                self.note(f"  {handler} ← {shown!r}, lastEventId {event.last_event_id!r}")
                data, event_type = [], ""
            elif line.name == "data":
                data.append(line.value)
            elif line.name == "event":
                event_type = line.value
            elif line.name == "id" and "\0" not in line.value:
                id_buffer = line.value
            elif line.name == "retry" and line.value.isascii() and line.value.isdigit():
                self.reconnection_ms = int(line.value)
                self.note(f"  retry: {line.value} → reconnection time {line.value} ms")


def run(
    url: str,
    *,
    seconds: float = 3.0,
    max_connections: int = 10,
    reconnection_ms: int = DEFAULT_RECONNECTION_MS,
    headers: dict[str, str] | None = None,
) -> Timeline:
    """Act as ``new EventSource(url)`` for ``seconds`` (or ``max_connections`` connections) and
    return the timeline. ``headers`` stand for what the browser adds by itself, such as a
    ``Cookie``: an ``EventSource`` has no way to add a header of its own choosing."""
    timeline = Timeline(url)
    state = _Connection(timeline, reconnection_ms)
    path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
    with httpx.Client() as client:
        for attempt in range(max_connections):
            request_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            request_headers.update(headers or {})
            sent = "(no Last-Event-ID)"
            if state.last_event_id:
                request_headers["Last-Event-ID"] = state.last_event_id
                sent = f"Last-Event-ID: {state.last_event_id}"
            timeline.requests.append(request_headers)
            state.note(f"GET {path}  {sent}")
            outcome = _fetch(client, url, request_headers, state, seconds)
            if outcome == "fail":
                timeline.ready_state = "CLOSED"
                state.note("fail the connection: readyState CLOSED, error event, no reconnection")
                return timeline
            left = seconds - (time.monotonic() - state.started)
            if outcome == "time" or attempt == max_connections - 1 or left <= 0:
                break
            timeline.ready_state = "CONNECTING"
            state.note(
                f"reestablish: readyState CONNECTING, error event, wait {state.reconnection_ms} ms"
            )
            time.sleep(min(state.reconnection_ms / 1000, max(0.0, left)))
            if time.monotonic() - state.started >= seconds:
                break
    state.note(f"(stopped watching after {seconds} s: a browser would go on)")
    return timeline


def _fetch(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    state: _Connection,
    seconds: float,
) -> str:
    """One connection: ``"fail"``, ``"reconnect"`` (ended, or a network error) or ``"time"``."""
    left = seconds - (time.monotonic() - state.started)
    try:
        with client.stream(
            "GET", url, headers=headers, timeout=httpx.Timeout(5.0, read=None)
        ) as response:
            content_type = response.headers.get("content-type", "")
            essence = content_type.split(";", 1)[0].strip().lower()
            state.note(f"← {response.status_code} {content_type or '(no Content-Type)'}")
            if response.status_code != 200 or essence != "text/event-stream":
                return "fail"
            state.timeline.ready_state = "OPEN"
            state.note("  announce the connection: readyState OPEN, open event")
            parser = EventStreamParser()

            def lines() -> Iterator[Line]:
                for chunk in response.iter_bytes():
                    yield from parser.feed(chunk)

            with stop_reading_after(response, left):  # our watch ends even on a quiet stream
                state.read(lines())
            if time.monotonic() - state.started >= seconds:
                return "time"
            state.note("  the response ended (any unfinished event is discarded)")
            return "reconnect"
    except httpx.TransportError as exc:
        state.note(f"network error ({type(exc).__name__})")
        return "reconnect"
