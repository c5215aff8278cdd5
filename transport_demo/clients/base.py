"""What the three clients share: seq bookkeeping, stats, backoff, the event queue and life cycle.

Each client runs one background task (``_run``) that keeps its transport connected and turns what
arrives into events. Server events are passed on as the server sent them (dicts); the client adds
its own notes (:class:`~transport_demo.server.protocol.ClientNote`: ``reconnecting``,
``reconnected``,
``gap``, ``new_connection``, ``error``, ``closed``) always with ``"client": True``, a key no server
event has. The three clients share one retry-or-give-up policy (:func:`should_retry`) and one URL
helper (:func:`transport_demo.server.urls.endpoint_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar

import httpx

from ..server.events import timestamp
from ..server.protocol import (
    DURABLE_EVENT_TYPES,
    FINAL_CLOSE_CODES,
    ClientNote,
    ClientState,
    ErrorCode,
    EventType,
)

__all__ = [
    "RETRYABLE_ERRORS",
    "Backoff",
    "BaseClient",
    "ClientError",
    "ClientStats",
    "DroppedByClient",
    "Event",
    "EventCallback",
    "error_from_response",
    "http_client",
    "http_timeout",
    "should_retry",
]

T = TypeVar("T")
Event = dict[str, Any]
EventCallback = Callable[[Event], None]


class DroppedByClient(Exception):
    """The connection was cut on purpose (:meth:`BaseClient.drop_connection`)."""


class ClientError(Exception):
    """The server refused a request with a 4xx that retrying can't fix (``code`` is its error)."""

    def __init__(self, code: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.status = code, detail, status


@dataclass
class ClientStats:
    """Counters a class can watch: every one of them is shown by the widgets."""

    received: int = 0  # server events of any type
    messages: int = 0  # durable events accepted (in order, no duplicates)
    heartbeats: int = 0
    timeouts: int = 0
    reconnects: int = 0
    duplicates: int = 0  # durable events dropped because their seq was already seen
    gaps: int = 0  # jumps in seq (events the server could no longer replay)
    errors: int = 0
    requests: int = 0  # HTTP requests or WebSocket handshakes made
    unread_dropped: int = 0  # events dropped from the iteration queue nobody was reading

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Backoff:
    """Exponential backoff with jitter: ``initial`` doubling up to ``maximum`` seconds.

    Each delay is drawn from the upper half of the current step ("equal jitter"), so a class of
    clients cut at the same moment does not come back at the same moment.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._step = initial

    def next(self) -> float:
        step = self._step
        self._step = min(self._step * 2, self.maximum)
        return step / 2 + random.random() * step / 2

    def reset(self) -> None:
        self._step = self.initial


RETRYABLE_ERRORS = frozenset(
    {ErrorCode.QUEUE_FULL, ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.SHUTTING_DOWN}
)
"""Refusals that say "not now" rather than "never": worth a retry after a backoff."""


def should_retry(status: int | None, code: str) -> bool:
    """The clients' one policy: retry (with backoff) after a network error (``status`` None), a
    5xx, or a refusal in :data:`RETRYABLE_ERRORS`; give up on any other 4xx, which retrying
    cannot fix."""
    return status is None or status >= 500 or code in RETRYABLE_ERRORS


class BaseClient:
    """The common shape: ``async with Client(url) as c``, ``await c.send(text)``,
    ``async for event in c``, ``c.connection_id``, ``c.last_seq``, ``c.stats``.

    ``on_event`` (optional) is called with every event as it happens, on the client's loop; the
    widgets use it. Iteration sees the same events through a queue of at most ``max_unread``
    events: if nobody reads, the oldest are dropped and counted in ``stats.unread_dropped``.
    """

    transport: ClassVar[str]
    _CLOSED = object()

    def __init__(
        self,
        base_url: str,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        connect_timeout: float = 5.0,
        on_event: EventCallback | None = None,
        max_unread: int = 10_000,
        http2: bool = False,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http2 = http2
        """Ask for HTTP/2 (ALPN ``h2``, over https only); ``http_version`` says what was got."""
        self.verify = verify
        """How to check an https server's certificate: ``True`` (the system's CAs), an
        ``ssl.SSLContext`` (e.g. ``server.ssl_context()`` for a certificate made at start), or
        ``False`` (no check: for a lesson on loopback only)."""
        self.http_version: str | None = None
        """The HTTP version of the last response: ``HTTP/1.1`` or ``HTTP/2``."""
        self.connect_timeout = connect_timeout
        self.connection_id: str | None = None
        self.last_seq = 0
        self.stats = ClientStats()
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.on_event = on_event
        self.closed = False
        self._unread: deque[Event] = deque(maxlen=max_unread)
        self._readable = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reconnecting = False
        self._attempt_task: asyncio.Future[Any] | None = None
        self.state: ClientState = ClientState.IDLE

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task; returns at once (watch events for ``connected``)."""
        if self._task is not None:
            return
        self.closed = False
        self.state = ClientState.CONNECTING
        self._task = asyncio.create_task(self._guarded_run(), name=f"{self.transport}-client")

    async def close(self) -> None:
        """Stop promptly: no further request, the socket closed cleanly (WebSocket: 1000)."""
        if self.closed:
            return
        self.closed = True
        await self._close_socket()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._release()
        self.state = ClientState.CLOSED
        self._readable.set()

    async def __aenter__(self) -> BaseClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_connected(self, timeout: float = 5.0) -> str:
        """Wait until the client has a connection id (the first ``connected`` event)."""
        async with asyncio.timeout(timeout):
            while self.connection_id is None or self.state not in (
                ClientState.OPEN,
                ClientState.WAITING,
            ):
                if self.closed:
                    raise ClientError("closed", "the client was closed")
                await asyncio.sleep(0.01)
        return self.connection_id

    def take_unread(self) -> list[Event]:
        """Every event not read yet, in order, leaving none (for tests and notebooks)."""
        events, self._unread = list(self._unread), deque(maxlen=self._unread.maxlen)
        return events

    # -- iteration ------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._unread:
                yield self._unread.popleft()
            if self.closed:
                return
            self._readable.clear()
            await self._readable.wait()

    async def next_event(self, timeout: float = 5.0) -> Event:
        """The next event (for tests and notebooks that want one at a time)."""
        async with asyncio.timeout(timeout):
            while not self._unread:
                if self.closed:
                    raise ClientError("closed", "the client was closed")
                self._readable.clear()
                await self._readable.wait()
        return self._unread.popleft()

    # -- what subclasses call -------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if len(self._unread) == self._unread.maxlen:
            self.stats.unread_dropped += 1
        self._unread.append(event)
        self._readable.set()
        if self.on_event is not None:
            self.on_event(event)

    def _note(self, event_type: ClientNote, **fields: Any) -> None:
        """A client-side event: marked ``"client": True``."""
        self._emit({"type": event_type, "client": True, "timestamp": timestamp(), **fields})

    def _error(self, code: str, detail: str) -> None:
        self.stats.errors += 1
        self._note(ClientNote.ERROR, error=code, detail=detail)

    def _handle(self, event: Event) -> None:
        """A server event: seq bookkeeping, counters, then on to the reader."""
        self.stats.received += 1
        kind = event.get("type")
        if kind == EventType.CONNECTED:
            new_id = event.get("connection_id")
            if self.connection_id is not None and new_id != self.connection_id:
                self._note(
                    ClientNote.NEW_CONNECTION,
                    detail="The server no longer knew the old connection: this is a new one, and "
                    "events for the old one cannot be replayed.",
                    previous=self.connection_id[:8],
                )
            if not event.get("resumed"):
                self.last_seq = 0
            self.connection_id = new_id
            self._connected()
        seq = event.get("seq")
        if isinstance(seq, int) and kind in DURABLE_EVENT_TYPES:
            if seq <= self.last_seq:
                self.stats.duplicates += 1
                return
            if seq > self.last_seq + 1:
                self.stats.gaps += 1
                self._note(
                    ClientNote.GAP,
                    expected=self.last_seq + 1,
                    got=seq,
                    missed=seq - self.last_seq - 1,
                )
            self.last_seq = seq
            self.stats.messages += 1
        elif kind == EventType.HEARTBEAT:
            self.stats.heartbeats += 1
        elif kind == EventType.TIMEOUT:
            self.stats.timeouts += 1
        elif kind == EventType.ERROR:
            self.stats.errors += 1
        self._emit(event)

    def _connected(self) -> None:
        """Called on every ``connected`` event: a reconnect has succeeded."""
        self.state = ClientState.OPEN
        self.backoff.reset()
        if self._reconnecting:
            self._reconnecting = False
            self._note(ClientNote.RECONNECTED, connection_id=self.connection_id)

    async def _retry_later(self, reason: str) -> None:
        """The transport failed in a way retrying can fix: note it, wait (backoff), return."""
        self.stats.reconnects += 1
        self._reconnecting = True
        self.state = ClientState.RECONNECTING
        delay = self.backoff.next()
        self._note(ClientNote.RECONNECTING, detail=reason, delay=round(delay, 3))
        await asyncio.sleep(delay)

    async def _after_socket(self, code: int | None, reason: str) -> bool:
        """After a socket-like connection (WebSocket, WebTransport session) ended with close
        ``code``: False when this client is done (closed by its owner, or a final close code:
        the server said not to come back), True once it has waited to try again."""
        if self.closed:
            return False
        if code in FINAL_CLOSE_CODES:
            self.state = ClientState.CLOSED
            self._note(ClientNote.CLOSED, code=code, detail=reason)
            return False
        await self._retry_later(reason)
        return True

    def _give_up(self, code: str, detail: str) -> None:
        """A 4xx that retrying can't fix: report it and stop."""
        self._error(code, detail)
        self.state = ClientState.ERROR

    async def _guarded_run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected answer: show it, don't vanish
            self._give_up("client_failed", f"{type(exc).__name__}: {exc}")

    async def drop_connection(self) -> None:
        """Cut the current connection abruptly, as a network fault would (for teaching and tests).

        The client notices, reconnects with backoff and resumes: nothing is lost.
        """
        if self._attempt_task is not None:
            self._attempt_task.cancel()

    async def _attempt(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one connection attempt as a task that :meth:`drop_connection` can cut."""
        task = asyncio.ensure_future(coro)
        self._attempt_task = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise DroppedByClient("the connection was cut on purpose") from None
            raise
        finally:
            self._attempt_task = None

    # -- what subclasses implement --------------------------------------------------------------

    async def _run(self) -> None:
        raise NotImplementedError

    async def _close_socket(self) -> None:
        """Close the socket cleanly before the task is cancelled (WebSocket: code 1000)."""

    async def _release(self) -> None:
        """Free what the client holds, after its task has ended (an HTTP connection pool)."""

    def _check_can_send(self) -> str:
        if self.closed:
            raise ClientError("closed", "The client is closed.")
        if self.connection_id is None:
            raise ClientError("not_connected", "Start the client and wait for its connection.")
        return self.connection_id

    async def send(self, text: str) -> None:
        raise NotImplementedError


def error_from_response(status: int, body: bytes) -> ClientError:
    """The server's ``error`` body as a :class:`ClientError` (or the bare status if it has none)."""
    try:
        payload = json.loads(body)
        return ClientError(str(payload["error"]), str(payload.get("detail", "")), status)
    except (ValueError, KeyError, TypeError):
        return ClientError(f"http_{status}", body[:200].decode("utf-8", "replace"), status)


def http_client(
    base_url: str,
    timeout: httpx.Timeout,
    *,
    http2: bool = False,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """An httpx client for our small, latency-bound requests (HTTP/2 when ``http2`` and the
    server agree by ALPN).

    TCP_NODELAY: httpx writes a request's headers and body separately, and with Nagle's algorithm
    the body waits for the ACK of the headers, which the server delays by up to 40 ms.
    """
    transport = httpx.AsyncHTTPTransport(
        http2=http2,
        verify=verify,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)


def http_timeout(read: float, connect: float) -> httpx.Timeout:
    """httpx's default 5 s would cut a held poll or a quiet stream: reads wait ``read`` seconds."""
    return httpx.Timeout(connect=connect, read=read, write=connect, pool=connect)
