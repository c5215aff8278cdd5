"""What one TCP socket may cost the server, enforced below the application, in uvicorn's protocols.

uvicorn hands a request to the application only once its headers are complete, so everything an
application can check (``limit_concurrency`` included) comes too late for a client that never
finishes its headers, or sends megabytes of them. These bounds act on the socket itself:

* **Header time.** A request's headers must be complete within ``header_timeout`` seconds of its
  first byte (or of the connection's start): a client that opens sockets and sends nothing, or
  a byte a second (slowloris), is cut. Between requests uvicorn's own keep-alive timeout applies.
* **Header size.** At most ``max_header_bytes`` of request line and headers and at most
  :data:`MAX_HEADERS` header lines: past either the answer is ``431 Request Header Fields Too
  Large`` (RFC 6585 §5) and the connection is closed.
* **Sockets per address.** At most ``max_sockets_per_address`` open sockets per client address
  (HTTP and WebSocket together), in this process; one more is closed at once, before a byte is
  read. Off unless set (classroom mode sets it: a room of strangers, docs/threat-model.md).
* **Unread leftovers.** A stream that another took over (a resume) is ended; if its client is not
  reading, what was already written would wait in memory (ours and the kernel's) for as long as
  the socket stays open. :func:`abort_unread` resets such a socket after :data:`ABORT_GRACE`
  seconds when bytes are still unsent; the routers call it for a superseded stream.

And the process's soft limit on open files is raised to its hard limit at start-up
(:func:`raise_open_file_limit`), so that idle sockets run into these bounds, not into ``EMFILE``
for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import resource
import socket
import struct
import termios
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .wakeups import Flag
from .ws_protocol import DrainingWebSocketProtocol

__all__ = [
    "ABORT_EXTENSION",
    "ABORT_GRACE",
    "DISCONNECT_EXTENSION",
    "MAX_HEADERS",
    "GuardedHttpProtocol",
    "GuardedWebSocketProtocol",
    "SocketLimits",
    "abort_unread",
    "raise_open_file_limit",
    "reset",
    "unsent_bytes",
]

MAX_HEADERS = 100
"""Header lines one request may have (browsers send 10–20; Node.js allows 2,000 by default)."""

ABORT_GRACE = 1.0
"""Seconds a superseded stream's client has to read what was written before it is reset."""

ABORT_EXTENSION = "transport_demo.abort_unread"
"""The ASGI scope extension under which these protocols offer :func:`abort_unread` for the
request's socket (absent under any other server: the routers then do without)."""

DISCONNECT_EXTENSION = "transport_demo.on_disconnect"
"""The HTTP scope extension under which :class:`GuardedHttpProtocol` offers to call a callback
(``extensions[DISCONNECT_EXTENSION](callback)``) once when the request's socket is lost before
its response is complete; ``None`` unregisters. A streaming response learns of a gone client
this way without a task per connection waiting on ``receive()`` for ``http.disconnect``
(absent under any other server: the SSE endpoint then runs that task)."""

log = logging.getLogger("transport_demo")


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """The bounds of the module docstring (from :class:`~transport_demo.server.settings.Settings`).

    Carried on uvicorn's ``Config`` (as ``config.socket_limits``), which worker processes receive
    pickled: so a module-level, frozen dataclass."""

    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_sockets_per_address: int | None = None


def limits_of(config: Any) -> SocketLimits:
    """The limits on a uvicorn ``Config`` (the defaults when none were set)."""
    limits = getattr(config, "socket_limits", None)
    return limits if isinstance(limits, SocketLimits) else SocketLimits()


def unsent_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes written to ``transport`` that its peer has not taken yet: asyncio's write buffer plus
    the kernel's send queue (``TIOCOUTQ``; 0 where it can't be read)."""
    size = 0
    with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
        size += transport.get_write_buffer_size()  # type: ignore[attr-defined]
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            size += int.from_bytes(
                fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"), "little", signed=True
            )
    return size


def reset(transport: asyncio.Transport) -> None:
    """Close ``transport`` with a reset (RST), dropping what it still had to send.

    ``abort()`` alone frees asyncio's buffer but not the kernel's: closing a socket whose send
    queue is not empty leaves it to the kernel, which goes on sending (an orphaned socket) for
    as long as the peer keeps its window open. A zero linger time makes the close a reset that
    frees the queue at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def abort_unread(transport: asyncio.Transport, grace: float = ABORT_GRACE) -> Callable[[], None]:
    """A callable that, from any thread, arranges for ``transport`` to be reset in ``grace``
    seconds if its peer still has not read everything written to it (an honest client that is
    reading has read its last event by then and loses nothing: the stream was over anyway)."""
    return _UnreadAbort(transport, asyncio.get_running_loop(), grace)


class _UnreadAbort:
    """:func:`abort_unread`'s callable: one small object per connection (every connection has
    one, and most never use it), where three closures cost ~0.7 KiB."""

    __slots__ = ("grace", "loop", "transport")

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, grace: float
    ) -> None:
        self.transport = transport
        self.loop = loop
        self.grace = grace

    def __call__(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to free
            self.loop.call_soon_threadsafe(self._arrange)

    def _arrange(self) -> None:
        self.loop.call_later(self.grace, self._check)

    def _check(self) -> None:
        if unsent_bytes(self.transport) > 0:
            reset(self.transport)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open files (``ulimit -n``) to the hard limit; return the
    ``(soft, hard)`` now in force. Each socket is a file: with Debian's soft default of 1,024 a
    few hundred idle sockets would make ``accept`` and every new file fail for everyone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class _PeerCount:
    """Open sockets per client address, for one uvicorn server (kept on its ``ServerState``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @staticmethod
    def of(server_state: Any) -> _PeerCount:
        count = getattr(server_state, "transport_demo_peers", None)
        if not isinstance(count, _PeerCount):
            count = _PeerCount()
            server_state.transport_demo_peers = count
        return count

    def add(self, address: str | None) -> int:
        if address is None:
            return 0
        self.counts[address] += 1
        return self.counts[address]

    def remove(self, address: str | None) -> None:
        if address is None or address not in self.counts:
            return
        self.counts[address] -= 1
        if self.counts[address] <= 0:
            del self.counts[address]


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class _HeadersTooLarge(Exception):
    """Raised from the parser's header callback; answered with 431."""


def release_transport(transport: asyncio.BaseTransport) -> None:
    """Break the cycle a lost connection's transport keeps with itself, so reference counting
    frees it. CPython 3.11's socket transport holds a bound method of its own (``_read_ready_cb``):
    a cycle only the collector frees, and never once the command line's GC policy froze it
    (:mod:`.gc_policy`: every connection alive at a freeze, that is every long-lived one). Once the
    connection is lost nothing reads from the socket again. A private attribute of asyncio's,
    hence the guard: on a Python without it this does nothing."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]


def _flag_like(event: asyncio.Event) -> Flag:
    flag = Flag()
    if event.is_set():
        flag.set()
    return flag


class _Guard:
    """:class:`GuardedHttpProtocol`'s own state, in one small object."""

    __slots__ = (
        "address",
        "extensions",
        "header_bytes",
        "header_lines",
        "header_timer",
        "in_headers",
        "limits",
        "on_disconnect",
        "peers",
        "raw_header_bytes",
    )

    def __init__(self, limits: SocketLimits, peers: _PeerCount) -> None:
        self.limits = limits
        self.peers = peers
        self.address: str | None = None  # set once counted
        self.header_bytes = 0  # the request line and headers, as parsed
        self.raw_header_bytes = 0  # what arrived while they were incomplete
        self.header_lines = 0
        self.in_headers = True  # until the first request's headers are complete
        self.header_timer: asyncio.TimerHandle | None = None
        self.on_disconnect: Callable[[], None] | None = None
        # The same for every request of the connection: the abort and the disconnect watch.
        self.extensions: dict[str, Any] = {}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the module's bounds: header time and size, sockets per
    address, and :data:`ABORT_EXTENSION` in every request's scope."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One attribute: uvicorn's protocol has 27, and an instance past 30 loses CPython's
        # key-sharing dict (~1.3 KiB more per connection, measured).
        self._g = _Guard(limits_of(self.config), _PeerCount.of(self.server_state))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's flow control waits on an asyncio.Event, whose deque of waiters costs ~0.7
        # KiB a connection; a Flag has the same semantics and a list only while someone waits.
        if isinstance(getattr(self.flow, "_is_writable_event", None), asyncio.Event):
            self.flow._is_writable_event = _flag_like(self.flow._is_writable_event)  # type: ignore[assignment]
        self._g.extensions = {
            ABORT_EXTENSION: abort_unread(transport),
            DISCONNECT_EXTENSION: self._watch_disconnect,
        }
        limit = self._g.limits.max_sockets_per_address
        if limit is not None:
            address = _peer(transport)
            self._g.address = address
            if self._g.peers.add(address) > limit:
                # Closed before a byte is read: nothing to answer (an HTTP answer would itself be
                # a write the peer may never read).
                transport.abort()
                return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        self._g.peers.remove(self._g.address)
        self._g.address = None
        watcher, self._g.on_disconnect = self._g.on_disconnect, None
        self._g.extensions.clear()  # it holds a bound method of this protocol: a cycle
        super().connection_lost(exc)
        release_transport(self.transport)
        if watcher is not None and self.cycle is not None and not self.cycle.response_complete:
            watcher()

    def _watch_disconnect(self, callback: Callable[[], None] | None) -> None:
        if callback is not None and self.cycle is not None and self.cycle.disconnected:
            self.loop.call_soon(callback)  # lost already: soon, as connection_lost would have
            return
        self._g.on_disconnect = callback

    def handle_websocket_upgrade(self) -> None:
        # The socket now belongs to the WebSocket protocol, which counts it itself; uvicorn never
        # calls this protocol's connection_lost after the hand-over.
        self._disarm_header_timer()
        self._g.peers.remove(self._g.address)
        self._g.address = None
        self._g.extensions.clear()
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        # Two counts: the raw bytes that arrive while headers are incomplete (the parser buffers
        # a header line until it ends, so an endless one must be cut by this count), and the
        # exact size of the request line and header lines, from the parser's callbacks.
        if self._g.in_headers:
            self._g.raw_header_bytes += len(data)
        # uvicorn's data_received, with one more outcome: a parser callback of ours refused the
        # headers (httptools wraps what a callback raises in HttpParserCallbackError).
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._refuse_headers()
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return
        if self._g.in_headers and self._g.raw_header_bytes > self._g.limits.max_header_bytes:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._g.in_headers = True
        self._g.header_lines = 0
        self._g.header_bytes = 0
        if self._g.header_timer is None:  # a pipelined or keep-alive request: a new clock
            self._arm_header_timer()
        self._g.on_disconnect = None  # a keep-alive connection's earlier request is over
        # The scope's type allows only the ASGI spec's extensions; ours are read by name.
        self.scope["extensions"] = self._g.extensions

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._g.header_lines += 1
        if self._g.header_lines > MAX_HEADERS:
            raise _HeadersTooLarge
        self._count_header_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._g.in_headers = False
        self._g.raw_header_bytes = 0
        self._disarm_header_timer()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new request's cycle (its task not started yet): its message event as a Flag too.
        if cycle is not None and cycle is not before:
            cycle.message_event = _flag_like(cycle.message_event)  # type: ignore[assignment]

    def _count_header_bytes(self, n: int) -> None:
        self._g.header_bytes += n
        if self._g.header_bytes > self._g.limits.max_header_bytes:
            raise _HeadersTooLarge

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._g.header_timer = self.loop.call_later(
            self._g.limits.header_timeout, self._header_timeout
        )

    def _disarm_header_timer(self) -> None:
        if self._g.header_timer is not None:
            self._g.header_timer.cancel()
            self._g.header_timer = None

    def _header_timeout(self) -> None:
        self._g.header_timer = None
        if self._g.in_headers and not self.transport.is_closing():
            # Nothing useful to say to a client that has not finished a request: just close.
            self.transport.abort()

    def _refuse_headers(self) -> None:
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        body = b"Request header fields too large."
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
        self.parser = httptools.HttpRequestParser(self)  # drop whatever was half-parsed
        self._g.in_headers = False


class GuardedWebSocketProtocol(DrainingWebSocketProtocol):
    """The WebSocket protocol
    (:class:`~transport_demo.server.ws_protocol.DrainingWebSocketProtocol`)
    counting its socket against the address's bound, and offering :data:`ABORT_EXTENSION`."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config=config, server_state=server_state, app_state=app_state, _loop=_loop)
        self._peers = _PeerCount.of(server_state)
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Counted without a check: the HTTP protocol admitted this socket and gave its place up
        # at the hand-over.
        if limits_of(self.config).max_sockets_per_address is not None:
            self._address = _peer(transport)
            self._peers.add(self._address)

    def connection_lost(self, exc: Exception | None) -> None:
        self._peers.remove(self._address)
        self._address = None
        super().connection_lost(exc)
        release_transport(self.transport)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[ABORT_EXTENSION] = abort_unread(self.transport)
