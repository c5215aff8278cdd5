"""The delivery layer: what a backend does above its store, written once for both.

A backend is a :class:`Delivery` — :class:`~transport_demo.server.hub.Hub` keeps connections in
this process's memory, :class:`~transport_demo.server.redis_hub.RedisHub` in Redis — and supplies
only **the store interface**, the abstract methods of the section so named below: make a
connection, attach a stream to a new or resumed one, append a client's echo, the four steps of a
held poll (:class:`~transport_demo.server.held_polls.PollSteps`), wake a waiter, stop. Everything
above that is here, once: the ``connected`` events, holding a poll and the send that is a poll,
the echo rule of the transport table, the text checks, the waiters of this process and how they
end (``superseded``, ``cut``, ``shutdown``), closing, the ``/stats`` counters, and the bridge
that runs a coroutine on the server's loop from another thread (a notebook's).

The rules of one connection (seq, replay buffer, acknowledgement, resume) are below the store
interface, in each store: the sans-I/O core (:mod:`transport_demo.server.connection`) in memory,
the Lua scripts (:mod:`transport_demo.server.redis_scripts`) on Redis; a property test holds the
two to the same answers (tests/test_store_parity.py).

Naming: an operation that is a coroutine starts with ``a``; an unprefixed one is synchronous and
may be called from any thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

from . import events
from .connection import check_text
from .errors import BackendUnavailable, ServerShuttingDown, TransportDemoError, UnknownConnection
from .expiry_wheel import ExpiryWheel
from .held_polls import PollSteps, hold_for, hold_poll, with_queued_seq
from .models import WebSocketFrame, parse_json
from .protocol import ConnectionState, EndReason, EventType, Transport
from .settings import Settings
from .stats import COUNTERS
from .transports import info
from .waiters import Outgoing, Waiting

__all__ = ["AttachedStream", "Delivery", "receive_message"]


class AttachedStream(Protocol):
    """An SSE or WebSocket stream attached to a connection (what ``aopen_stream`` returns); the
    loop behind :meth:`batches` is :class:`~transport_demo.server.stream_loop.StreamLoop`."""

    @property
    def connection_id(self) -> str: ...

    connected: Outgoing
    """The ``connected`` event, written first (set by ``aopen_stream``)."""
    ended: EndReason | None
    on_superseded: Callable[[], None] | None
    """Called once when another stream takes the connection over (the router sets it: it resets
    the socket if its client leaves what was written unread, socket_guard.abort_unread)."""

    def batches(self) -> AsyncIterator[list[Outgoing]]: ...

    async def areceive(self, text: str) -> int: ...

    def send_error(self, code: str, detail: str) -> bool: ...

    async def aclose(self) -> None: ...


async def receive_message(stream: AttachedStream, raw: str | bytes) -> bool:
    """One ``{"message": …}`` from a socket-like client (a WebSocket frame, a WebTransport line):
    handed to the hub, whose echo follows, or answered with an error event. False when even the
    error cannot be queued: the client sends bad input faster than it reads the answers."""
    try:
        frame = parse_json(WebSocketFrame, raw)
        await stream.areceive(frame.message)
    except TransportDemoError as exc:
        return stream.send_error(exc.code, exc.detail)
    return True


W = TypeVar("W", bound=Waiting)
S = TypeVar("S", bound=AttachedStream)
T = TypeVar("T")

THREAD_TIMEOUT = 6.0
"""Seconds a call from another thread waits for the server's loop to answer."""


class Delivery(ABC, Generic[W, S]):
    """The operations the routers, ``/stats`` and the launcher call
    (:class:`~transport_demo.server.backend.Backend`), over a store; see the module docstring.

    ``W`` is the store's waiter class (a held poll), ``S`` its stream class. ``lock`` guards the
    waiters (and, in memory, the connections): a ``threading.Lock`` where other threads touch the
    state, a no-op where only the server's loop does.
    """

    def __init__(
        self,
        settings: Settings,
        lock: AbstractContextManager[Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.lock = lock
        self._clock = clock
        self._waiters: dict[str, W] = {}  # connection id -> the poll or stream attached here
        self._closing = False
        self._started = clock()
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wheel: ExpiryWheel | None = None

    # -- the store interface: what a backend supplies ----------------------------------------

    @abstractmethod
    async def start(self) -> None:
        """Bind to the running loop (call :meth:`_bind_loop`) and start the store's tasks."""

    @abstractmethod
    async def _astop(self) -> None:
        """After every waiter has ended (:meth:`close`): stop the store's tasks and clients."""

    @abstractmethod
    async def _acreate_poll(self, address: str | None) -> str:
        """A new long-polling connection for a client at ``address``; its id. Raises
        ``TooManyConnections`` or ``TooManyConnectionsFromAddress``."""

    @abstractmethod
    async def _acreate_stream(self, transport: Transport, address: str | None) -> S:
        """A new connection with a stream attached (resume point 0)."""

    @abstractmethod
    async def _aresume_stream(
        self, transport: Transport, connection_id: str, last_seq: int | None
    ) -> tuple[S, int] | None:
        """Attach a stream to ``connection_id`` (of ``transport``) after acknowledging
        ``last_seq``; the stream and the resume point, or ``None`` when there is no such
        connection. A waiter attached before ends, ``superseded``."""

    @abstractmethod
    async def _aappend_echo(
        self, connection_id: str, event_type: EventType, text: str, transport: Transport, wake: bool
    ) -> int:
        """Store a client's text as a durable event of ``connection_id`` (of ``transport``) and
        return its seq; rate-limited per connection. ``wake=False``: do not wake a held poll
        (the send that is a poll supersedes it right after)."""

    @abstractmethod
    def _poll_steps(self, last_seq: int | None) -> PollSteps[Any]:
        """The steps of one held poll in this store."""

    @abstractmethod
    def wake(self, waiter: W) -> None:
        """Set ``waiter``'s wake-up on the server's loop (from any thread)."""

    # -- what the store interface serves ------------------------------------------------------

    def _bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False

    def expiry_wheel(self) -> ExpiryWheel:
        """The one timer wheel of this hub's waiters (held polls' holds, streams' heartbeats),
        on the running loop: the server's. A hub used on another loop gets a wheel of that loop:
        its own from then on if the first loop no longer runs (a test's hub, before
        :meth:`start`), else one of its own for the call, so that the server's wheel is only
        ever touched on the server's loop."""
        loop = asyncio.get_running_loop()
        wheel = self._wheel
        if wheel is not None and wheel.loop is loop:
            return wheel
        if wheel is None or not wheel.loop.is_running():
            wheel = self._wheel = ExpiryWheel(loop)
            return wheel
        return ExpiryWheel(loop)

    def check_ready(self) -> None:
        """Refuse new work once :meth:`close` has begun (a store may refuse more)."""
        if self._closing:
            raise ServerShuttingDown()

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to one of the ``/stats`` counters."""
        self._counters[counter] += n

    def end(self, waiter: W, reason: EndReason) -> None:
        """Tell ``waiter`` to stop, and why (the first reason given wins), and wake it."""
        waiter.stop(reason)
        self.wake(waiter)

    async def close(self, timeout: float = 0.5) -> None:
        """End every stream and held poll (``shutdown``), refuse new ones, give them up to
        ``timeout`` seconds to write their last words (a poll's answer, a WebSocket close), then
        stop the store."""
        with self.lock:
            self._closing = True
            for waiter in list(self._waiters.values()):
                self.end(waiter, EndReason.SHUTDOWN)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._waiters and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await self._astop()

    def _cut(self, transport: Transport | None) -> int:
        """End every waiter of ``transport`` (``None``: all) in this process, ``cut``."""
        with self.lock:
            cut = [
                waiter
                for waiter in self._waiters.values()
                if waiter.ended is None and (transport is None or waiter.transport is transport)
            ]
            for waiter in cut:
                self.end(waiter, EndReason.CUT)
            self._counters["waiters_cut"] += len(cut)
        return len(cut)

    def disconnect(self, connection_id: str) -> bool:
        """Cut the one stream or held poll attached to ``connection_id`` in this process, as
        :meth:`disconnect_all` cuts a whole transport (a WebSocket sees close 1012); the
        connection stays, so its client can resume. False when nothing is attached here. On the
        server's loop (the memory hub: any thread). For teaching: ``/lessons/cut`` cuts one
        page's socket, not the whole class's."""
        with self.lock:
            waiter = self._waiters.get(connection_id)
            if waiter is None or waiter.ended is not None:
                return False
            self.end(waiter, EndReason.CUT)
            self._counters["waiters_cut"] += 1
        return True

    def call_from_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop from another thread and return its answer."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise BackendUnavailable()
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError("On the server's own loop, await the coroutine instead.")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(THREAD_TIMEOUT)

    # -- the transports' operations -----------------------------------------------------------

    async def aconnect_long_poll(self, address: str | None = None) -> str:
        """Create a long-polling connection for a client at ``address`` (counted against
        ``max_connections_per_address``); return its encoded ``connected`` event."""
        self.check_ready()
        connection_id = await self._acreate_poll(address)
        settings = self.settings
        return events.poll_connected(
            connection_id,
            poll_timeout=settings.poll_timeout,
            expires_after=settings.effective_poll_expiry,
        )

    async def aopen_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
        *,
        address: str | None = None,
    ) -> S:
        """Attach an SSE or WebSocket stream: resume ``connection_id`` after ``last_seq``, or
        start a new connection.

        An unknown or expired id (or another transport's) starts a new connection, and its
        ``connected`` event says ``"resumed": false`` and ``"resume_failed":
        "unknown_connection"``. A stream still attached to the resumed connection is ended
        (``superseded``): the new one takes over and replays everything after ``last_seq``
        (everything unacknowledged if absent). ``address`` is the client's, counted against
        ``max_connections_per_address`` when a new connection is made.
        """
        self.check_ready()
        resumed = None
        extra: dict[str, Any] = {}
        if connection_id is not None:
            resumed = await self._aresume_stream(transport, connection_id, last_seq)
            if resumed is None:
                self.count("resumes_failed")
                extra["resume_failed"] = UnknownConnection.code
            else:
                self.count("streams_resumed")
        stream, point = resumed or (await self._acreate_stream(transport, address), 0)
        settings = self.settings
        connected = events.stream_connected(
            stream.connection_id,
            transport.value,
            resumed=resumed is not None,
            last_seq=point,
            heartbeat_interval=settings.heartbeat_interval,
            resume_grace=settings.resume_grace,
            **extra,
        )
        stream.connected = Outgoing(connected, f"{stream.connection_id}:{point}")
        return stream

    async def apoll(
        self, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
    ) -> str:
        """Answer a long poll (:func:`~transport_demo.server.held_polls.hold_poll` over this
        store's steps); ``hold`` defaults to ``poll_timeout`` (with the settings' jitter)."""
        settings = self.settings
        if hold is None:
            hold = hold_for(settings.poll_timeout, settings.poll_hold_jitter)
        steps = self._poll_steps(last_seq)
        wheel = self.expiry_wheel()
        return await hold_poll(steps, connection_id, last_seq, hold, settings.poll_timeout, wheel)

    async def asend_and_poll(
        self, connection_id: str, text: str, last_seq: int | None = None
    ) -> str:
        """A client sent ``text`` on long polling: store it, then answer at once like a poll,
        with ``queued_seq`` (the seq it got). This request is the connection's poll now: a held
        poll ends, ``superseded`` and empty; it is not woken by the append, which would race
        this answer for the echo."""
        seq = await self._areceive(connection_id, text, Transport.LONG_POLLING, wake=False)
        return with_queued_seq(await self.apoll(connection_id, last_seq, hold=0), seq)

    async def areceive(self, connection_id: str, text: str, transport: Transport) -> int:
        """A client sent ``text``: store its echo (the transport table's echo type) and return
        its seq. Raises ``RateLimited`` past ``max_messages_per_second`` (nothing is stored)."""
        return await self._areceive(connection_id, text, transport, wake=True)

    async def _areceive(
        self, connection_id: str, text: str, transport: Transport, *, wake: bool
    ) -> int:
        text = check_text(text, self.settings.max_message_bytes)
        self.check_ready()
        seq = await self._aappend_echo(connection_id, info(transport).echo, text, transport, wake)
        self.count("messages_received")
        return seq

    # -- for notebooks, /stats and tests: synchronous, from any thread -----------------------

    @abstractmethod
    def publish(self, connection_id: str, text: str) -> int:
        """Store a durable ``message`` for one connection and return its seq. Raises
        ``UnknownConnection``, ``MessageTooLarge``, ``QueueFull``."""

    @abstractmethod
    def broadcast(self, text: str) -> int:
        """Store a durable ``message`` for every connection; how many took it (a full queue
        skips its connection)."""

    @abstractmethod
    async def astats(self) -> dict[str, Any]:
        """The ``/stats`` body: short ids only, never message text."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """:meth:`astats` from any thread."""

    @abstractmethod
    def state_of(self, connection_id: str) -> ConnectionState:
        """``live``, ``waiting`` or ``disconnected``; raises ``UnknownConnection``."""

    @abstractmethod
    def disconnect_all(self, transport: Transport | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (``None``: all); how many here."""
