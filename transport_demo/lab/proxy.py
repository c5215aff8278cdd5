"""A fault-injecting TCP proxy on loopback: cut, stall, delay or buffer a connection on purpose.

Teaching and test code, not part of the server: it stands between a client and the server and does
to the bytes what a real network or a real proxy can do. It runs its own event loop in a daemon
thread, so it works the same from a notebook cell, a test or a script::

    with FaultyProxy(server.port, buffer_bytes=1024) as proxy:
        ...  # point a client at proxy.url instead of server.url

Faults:

* ``cut(side)`` aborts every connection through it now: the client's side, the server's side, or
  both (an RST, no goodbye);
* ``cut_mid_response()`` lets half of the next server-to-client chunk through, then cuts: the
  client is left holding part of a response, an SSE event or a WebSocket frame;
* ``stall()`` stops forwarding on the current connections without closing them (half-open), until
  ``resume_forwarding()``; new connections are not stalled;
* ``buffer_bytes=N`` holds server-to-client bytes until N have gathered (or the server closes),
  like a buffering proxy; with ``honour_accel_buffering=True`` a response whose head says
  ``X-Accel-Buffering: no`` is passed through at once, as nginx does;
* ``delay=d`` adds ``d`` seconds to every chunk in each direction (a round trip of ``2 * d``),
  keeping their order: a slow network on loopback;
* ``refusing = True`` aborts every new connection at once (the far side is down), until False.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

__all__ = ["FaultyProxy"]

T = TypeVar("T")

_NO_BUFFERING = b"x-accel-buffering: no"


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream = client, upstream
        self.stalled = False
        self.cut_mid = False
        self.unbuffered = False  # the response asked not to be buffered, and we honour that


class FaultyProxy:
    """A TCP proxy from ``url`` (a free port on 127.0.0.1) to ``127.0.0.1:target_port``.

    ``connections`` counts the connections accepted, ``cuts`` the connections cut on purpose.
    """

    def __init__(
        self,
        target_port: int,
        *,
        buffer_bytes: int = 0,
        honour_accel_buffering: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.target = ("127.0.0.1", target_port)
        self.buffer_bytes = buffer_bytes
        self.honour_accel_buffering = honour_accel_buffering
        self.delay = delay
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.refusing = False
        self._loop = asyncio.new_event_loop()
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="faulty-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the proxy did not start")

    @property
    def url(self) -> str:
        """Where clients connect: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        faults = []
        if self.buffer_bytes:
            honour = ", honours X-Accel-Buffering" if self.honour_accel_buffering else ""
            faults.append(f"buffers {self.buffer_bytes} bytes{honour}")
        if self.delay:
            faults.append(f"adds {self.delay * 1000:.0f} ms each way")
        shown = "; ".join(faults) or "passes bytes through"
        return f"<FaultyProxy {self.url} → 127.0.0.1:{self.target[1]}: {shown}>"

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the relay ------------------------------------------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(
                self._pipe(pair, reader, up_writer, downstream=False),
                self._pipe(pair, up_reader, writer, downstream=True),
            )
        except asyncio.CancelledError:
            # close() cancels relays still running. This task belongs to asyncio.start_server,
            # whose done-callback asks a cancelled task for its exception and logs the
            # CancelledError that raises (Python 3.11): end quietly instead.
            pass
        finally:
            self._pairs.discard(pair)
            for w in (writer, up_writer):
                w.close()

    async def _pipe(
        self,
        pair: _Pair,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        downstream: bool,
    ) -> None:
        send = _Sender(writer, self.delay)
        held = b""
        head = b""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                while pair.stalled:
                    await asyncio.sleep(0.01)
                if downstream and pair.cut_mid:
                    await send(data[: max(1, len(data) // 2)])
                    await send.flush()
                    self._abort(pair)
                    return
                if downstream and self.honour_accel_buffering and b"\r\n\r\n" not in head:
                    head = (head + data)[:16384]
                    if _NO_BUFFERING in head.split(b"\r\n\r\n", 1)[0].lower():
                        pair.unbuffered = True
                if downstream and self.buffer_bytes and not pair.unbuffered:
                    held += data
                    if len(held) < self.buffer_bytes:
                        continue
                    data, held = held, b""
                elif held:
                    data, held = held + data, b""
                await send(data)
            if held:  # the server finished: a buffering proxy passes on what it holds
                await send(held)
            await send.flush()
        writer.close()

    def _abort(self, pair: _Pair, side: str = "both") -> None:
        self.cuts += 1
        if side in ("both", "client"):
            pair.client.transport.abort()
        if side in ("both", "server"):
            pair.upstream.transport.abort()

    def _run(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(5)

    # -- faults, from any thread ----------------------------------------------------------------

    def cut(self, side: str = "both") -> int:
        """Abort every connection now, on the client's side, the server's side or both; returns
        how many there were."""

        def cut_all() -> int:
            pairs = list(self._pairs)
            for pair in pairs:
                self._abort(pair, side)
            return len(pairs)

        return self._run(cut_all)

    def _mark(self, **flags: bool) -> int:
        """Set flags on every current connection; returns how many there are."""

        def mark() -> int:
            for pair in self._pairs:
                for name, value in flags.items():
                    setattr(pair, name, value)
            return len(self._pairs)

        return self._run(mark)

    def cut_mid_response(self) -> int:
        """Cut each connection in the middle of the next chunk the server sends."""
        return self._mark(cut_mid=True)

    def stall(self) -> int:
        """Stop forwarding on the current connections, without closing them."""
        return self._mark(stalled=True)

    def resume_forwarding(self) -> None:
        """Forward again on the stalled connections."""
        self._mark(stalled=False)

    def close(self) -> None:
        """Cut every connection, stop listening and end the proxy's thread."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.cut()

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:  # relays still winding down: end them before the loop stops
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class _Sender:
    """Writes chunks to one side, each ``delay`` seconds after it was read, in order."""

    def __init__(self, writer: asyncio.StreamWriter, delay: float) -> None:
        self.writer = writer
        self.delay = delay
        self._queue: asyncio.Queue[tuple[float, bytes] | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, data: bytes) -> None:
        if self.delay <= 0:
            self.writer.write(data)
            await self.writer.drain()
            return
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._send_later())
        self._queue.put_nowait((loop.time() + self.delay, data))

    async def _send_later(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while (item := await self._queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                self.writer.write(data)
                await self.writer.drain()

    async def flush(self) -> None:
        """Wait until everything queued has been written."""
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(OSError):
                await self._task
