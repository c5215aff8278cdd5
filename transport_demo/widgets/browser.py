"""Clients that run in the notebook's own browser page: the browser's real ``EventSource``,
``WebSocket``, ``WebTransport`` and ``fetch``, as a web page would use them.

The Python widgets (:mod:`transport_demo.widgets`) run their clients in the kernel. These run
them in the page that shows the notebook, so a class sees what a browser does by itself:
``EventSource`` reconnecting and sending ``Last-Event-ID``, giving up for good on a 204, the
six-connections-per-server limit; and what it does not: a ``WebSocket`` never reconnects.

Made with anywidget: a widget is one ES module of plain JavaScript, with no build step and no
JupyterLab extension to install, and it works wherever ipywidgets do (JupyterLab, Notebook 7,
VS Code). Each widget's JavaScript is two parts: the *page code* (``widgets/js/page_*.js``,
20–40 lines, the code you would write in a page; ``BrowserSSEWidget.page_code()`` shows it) and
the widget around it (``widget.js``: counters, log, controls).

How the kernel and the page talk, and what that means for a class:

* The kernel sets traits (``running``, ``outbox``); the page acts on their values, so a
  ``start()`` or ``send()`` made before the widget is displayed is not lost (a custom message
  sent then would be).
* The page sends its state back as whole values (counters, the latest log entries) every 200 ms.
  While a cell runs, those updates wait in the kernel's queue and are applied, in order, when it
  finishes: nothing is lost, but a cell cannot wait for the page (``time.sleep`` in a cell
  sees no change). Read ``stats`` and ``events`` in the next cell.
* So under *Run All* the kernel hears nothing from the page until every cell has run: a later
  cell sees an empty ``connection_id``. Make such a widget with ``start=True`` (it connects the
  moment the page shows it) and have a cell that must act on an open page connection wait for it
  on the kernel's side, where the relay sees it: :func:`wait_for_page`.
* Without a browser (a headless run) nothing connects: the widget's state stays idle.

Behind jupyter-server-proxy (JupyterHub, Binder) the page uses the server's ``browser_url``
(:func:`page_url`): streams need jupyter-server-proxy 4.4 or later, and pass unbuffered only
because the browser's ``EventSource`` asks with ``Accept: text/event-stream`` exactly.

WebTransport cannot always run in the page, and its widget says so in its view and in
``unavailable`` (Start is then disabled): a page that is not a secure context (plain ``http:`` to
a LAN address) has no ``WebTransport``, nor has every browser; and a page that reaches the
kernel's server through jupyter-server-proxy cannot reach it over UDP (the proxy carries TCP), so
there only the Python-side :class:`~transport_demo.widgets.WebTransportWidget` works.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

import anywidget
import traitlets

__all__ = [
    "BrowserLongPollWidget",
    "BrowserSSEWidget",
    "BrowserWebSocketWidget",
    "BrowserWebTransportWidget",
    "BrowserWidget",
    "ConnectionLimitDemo",
    "page_url",
    "wait_for_page",
    "wait_until",
]

JS = Path(__file__).with_name("js")


class _HasUrl(Protocol):
    @property
    def url(self) -> str: ...


def page_url(server: str | _HasUrl) -> str:
    """The server's address as the notebook's page must use it: the one place to change.

    A server (or a :class:`~transport_demo.lab.network.Network`) gives its ``browser_url``: its own
    address when Python runs on its own, or, inside a Jupyter server with jupyter-server-proxy
    (JupyterHub, Binder), the proxied path (``/user/NAME/proxy/8000/``), because there the page
    can reach only the Jupyter server. Without one, its ``url``. A string is used as it is. The
    page resolves a relative address against Jupyter's base URL (``widget.js``, ``resolveBase``),
    so ``/proxy/8000/`` and ``proxy/8000`` both work.
    """
    if isinstance(server, str):
        return server
    browser_url = getattr(server, "browser_url", None)
    if isinstance(browser_url, str) and browser_url:
        return browser_url
    return server.url


class _HasActive(Protocol):
    @property
    def active(self) -> int: ...


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Call ``check`` every 50 ms until it is true (``True``) or ``timeout`` seconds have passed
    (``False``): for a cell that must wait for something the kernel can see by itself, such as
    ``lambda: stand_in.answered >= 1`` (the page's ``EventSource`` has met the 204)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_page(
    network: _HasActive, count: int = 1, timeout: float = 10.0, settle: float = 0.5
) -> bool:
    """Wait until ``count`` connections are open through ``network`` (a
    :class:`~transport_demo.lab.network.Network` the page's widgets use), then ``settle``
    seconds more (a TCP connection is counted when the relay accepts it; the handshake and the
    server's ``connected`` follow within milliseconds); ``False`` after ``timeout`` seconds (no
    browser shows the notebook: a headless run).

    The kernel cannot wait for the page's own messages while a cell runs (they queue behind the
    cells, and under *Run All* behind all of them), but the relay runs in a thread of this
    kernel and counts the connections it carries: so a cell can make sure the page is connected
    before it cuts the network, whenever the widget's cell ran.
    """
    if not wait_until(lambda: network.active >= count, timeout):
        return False
    time.sleep(settle)
    return True


@cache
def _read(name: str) -> str:
    return (JS / name).read_text(encoding="utf-8")


class BrowserWidget(anywidget.AnyWidget):
    """Base class; see :class:`BrowserLongPollWidget`, :class:`BrowserSSEWidget`,
    :class:`BrowserWebSocketWidget`.

    Drive it by clicks or from code: ``w.start()``, ``w.send(text)``, ``w.stop()``,
    ``w.clear()``; read ``w.status``, ``w.connection_id``, ``w.stats``, ``w.events``,
    ``w.ready_state`` and (WebSocket) ``w.buffered_amount`` — in a later cell than the one that
    acted (see the module's docstring).
    """

    transport_name: ClassVar[str]
    title_text: ClassVar[str]
    page_file: ClassVar[str]

    transport = traitlets.Unicode().tag(sync=True)
    url = traitlets.Unicode().tag(sync=True)
    title = traitlets.Unicode().tag(sync=True)
    widget_id = traitlets.Unicode().tag(sync=True)
    reconnect = traitlets.Bool(False).tag(sync=True)
    # kernel -> page: what to do
    running = traitlets.Bool(False).tag(sync=True)
    start_count = traitlets.Int(0).tag(sync=True)  # Start again after the client gave up
    outbox: traitlets.List[list[Any]] = traitlets.List().tag(sync=True)
    clear_count = traitlets.Int(0).tag(sync=True)
    # page -> kernel: what happened
    sent_id = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    connection_id = traitlets.Unicode("").tag(sync=True)
    last_seq = traitlets.Int(0).tag(sync=True)
    ready_state = traitlets.Unicode("").tag(sync=True)
    buffered_amount = traitlets.Int(0).tag(sync=True)
    counters = traitlets.Dict().tag(sync=True)
    log: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    logged = traitlets.Int(0).tag(sync=True)
    unavailable = traitlets.Unicode("").tag(sync=True)
    """Why the page's code cannot run in this page ("" when it can), as the page found it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "page_file" in cls.__dict__:  # not the subclasses traitlets makes on the fly
            cls._esm = _read(cls.page_file) + _read("widget.js")
            cls._css = _read("widget.css")

    def __init__(self, server: str | _HasUrl, *, start: bool = False, **options: Any) -> None:
        """``start=True`` connects as soon as the page shows the widget: it is part of the state
        the page receives with it, so it holds under *Run All* and after a reload."""
        super().__init__(
            url=page_url(server),
            transport=self.transport_name,
            title=self.title_text
            + (", reconnected by the page's code" if options.get("reconnect") else "")
            + " — in this browser page",
            widget_id=uuid.uuid4().hex,
            running=start,
            **options,
        )

    @classmethod
    def page_code(cls) -> Any:
        """The page code of this transport, for a notebook to show (syntax-highlighted)."""
        from IPython.display import Code

        code = Code(_read(cls.page_file), language="javascript")  # type: ignore[no-untyped-call]
        return code

    def start(self) -> None:
        """Connect, resuming the previous connection if there was one; after the client gave
        up (an ``EventSource`` failed for good, a WebSocket closed), a new one."""
        self.running = True
        self.start_count += 1

    def stop(self) -> None:
        """Close: ``EventSource.close()``, a WebSocket close 1000, the held poll aborted."""
        self.running = False

    def send(self, text: str) -> None:
        """Have the page send ``text`` (once it has a connection); sent in order, exactly once."""
        next_id = self.outbox[-1][0] + 1 if self.outbox else 1
        self.outbox = [*self.outbox[-99:], [next_id, text]]

    def clear(self) -> None:
        """Empty the log (the counters stay)."""
        self.clear_count += 1

    @property
    def stats(self) -> dict[str, int]:
        """messages, heartbeats, timeouts, reconnects, duplicates, gaps, errors."""
        return dict(self.counters)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The latest log entries (at most 200): ``t``, ``type``, ``seq``, ``text``,
        ``client`` for the page's own notes, ``last_event_id`` for SSE."""
        return list(self.log)


class BrowserLongPollWidget(BrowserWidget):
    """Long polling with the page's ``fetch``: ``POST /poll`` with ``last_seq``, again and again."""

    transport_name = "long-polling"
    title_text = "Long polling (fetch)"
    page_file = "page_longpoll.js"


class BrowserSSEWidget(BrowserWidget):
    """Server-Sent Events with the page's ``EventSource``; sends with ``fetch``."""

    transport_name = "sse"
    title_text = "Server-Sent Events (EventSource)"
    page_file = "page_sse.js"


class BrowserWebSocketWidget(BrowserWidget):
    """The page's ``WebSocket``. It does not reconnect after a close unless ``reconnect=True``
    (then the page's code does, with backoff, and resumes with ``last_seq``)."""

    transport_name = "websocket"
    title_text = "WebSocket"
    page_file = "page_websocket.js"


class BrowserWebTransportWidget(BrowserWidget):
    """The page's ``WebTransport``: a session over HTTP/3 (UDP) with the certificate pinned by
    the hash ``GET /webtransport`` gives, JSON lines on the one stream the server opens. Like a
    WebSocket it does not reconnect unless ``reconnect=True`` (then the page's code resumes with
    ``last_seq``). Where it cannot run (see the module's docstring) it says why and stays idle."""

    transport_name = "webtransport"
    title_text = "WebTransport"
    page_file = "page_webtransport.js"


class ConnectionLimitDemo(anywidget.AnyWidget):
    """``count`` streams (``kind="sse"`` or ``"websocket"``) opened at once from this page to one
    server, with each one's ``readyState`` and when it opened. Over HTTP/1.1 the seventh
    ``EventSource`` waits; ``close_one()`` frees a connection and it opens. The page's summary
    line (how many opened, how long the last one waited) stays after :meth:`stop`, so a
    teardown under *Run All* does not erase what the page saw."""

    _esm = _read("page_limit.js") + _read("limit.js")
    _css = _read("widget.css")

    url = traitlets.Unicode().tag(sync=True)
    kind = traitlets.Unicode("sse").tag(sync=True)
    count = traitlets.Int(7).tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    close_count = traitlets.Int(0).tag(sync=True)
    streams: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)

    def __init__(
        self, server: str | _HasUrl, *, kind: str = "sse", count: int = 7, start: bool = False
    ) -> None:
        """``start=True`` opens the streams as soon as the page shows the widget. What each
        stream did stays in the table after :meth:`stop` (opened after how long, or never)."""
        if kind not in ("sse", "websocket"):
            raise ValueError("kind is 'sse' or 'websocket'")
        super().__init__(url=page_url(server), kind=kind, count=count, running=start)

    @staticmethod
    def page_code() -> Any:
        from IPython.display import Code

        code = Code(_read("page_limit.js"), language="javascript")  # type: ignore[no-untyped-call]
        return code

    def start(self) -> None:
        """Open the ``count`` streams (once; again only after :meth:`stop`)."""
        self.running = True

    def stop(self) -> None:
        """Close every stream; the table keeps what each one did."""
        self.running = False

    def close_one(self) -> None:
        """Close the first open stream: a connection comes free."""
        self.close_count += 1

    @property
    def opened(self) -> int:
        """How many of the streams are open now (as last reported by the page)."""
        return sum(1 for stream in self.streams if stream["state"] == "OPEN")
