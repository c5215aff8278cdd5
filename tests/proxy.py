"""A small fault-injecting TCP proxy on loopback, for cutting connections on purpose.

It runs its own event loop in a thread. Faults:

* ``cut(side)`` aborts every connection through it now: the client's side, the server's side, or
  both (an RST, no goodbye);
* ``cut_mid_response()`` lets half of the next server-to-client chunk through, then cuts: the
  client is left holding part of a response, an SSE event or a WebSocket frame;
* ``stall()`` stops forwarding on the current connections without closing them (half-open), until
  ``resume_forwarding()``; new connections are not stalled;
* ``buffer_bytes=N`` holds server-to-client bytes until N have gathered, like a buffering proxy;
* ``refusing = True`` aborts every new connection at once (the far side is down), until False.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class _Pair:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream = client, upstream
        self.stalled = False
        self.cut_mid = False


class FaultyProxy:
    def __init__(self, target_port: int, *, buffer_bytes: int = 0) -> None:
        self.target = ("127.0.0.1", target_port)
        self.buffer_bytes = buffer_bytes
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.refusing = False
        self._loop = asyncio.new_event_loop()
        self._pairs: set[_Pair] = set()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        held = b""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                while pair.stalled:
                    await asyncio.sleep(0.01)
                if downstream and pair.cut_mid:
                    writer.write(data[: max(1, len(data) // 2)])
                    await writer.drain()
                    self._abort(pair)
                    return
                if downstream and self.buffer_bytes:
                    held += data
                    if len(held) < self.buffer_bytes:
                        continue
                    data, held = held, b""
                writer.write(data)
                await writer.drain()
        writer.close()

    def _abort(self, pair: _Pair, side: str = "both") -> None:
        self.cuts += 1
        if side in ("both", "client"):
            pair.client.transport.abort()
        if side in ("both", "server"):
            pair.upstream.transport.abort()

    def _run(self, fn: object) -> int:
        async def call() -> int:
            return fn()  # type: ignore[operator, no-any-return]

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(5)

    def cut(self, side: str = "both") -> int:
        """Abort every connection now, on the client's side, the server's side or both."""

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
        self._mark(stalled=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()

        async def shut() -> None:
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
