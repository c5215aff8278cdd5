"""A small fault-injecting TCP proxy on loopback, for cutting connections on purpose.

It runs its own event loop in a thread. ``cut()`` closes every connection going through it at
once (both directions); ``stall()`` stops forwarding without closing (a half-open connection);
``resume_forwarding()`` undoes that.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class FaultyProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = threading.Event()
        self._flowing.set()
        self.connections = 0
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
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                while not self._flowing.is_set():
                    await asyncio.sleep(0.01)
                writer.write(data)
                await writer.drain()
        writer.close()

    def _call(self, fn: object) -> None:
        asyncio.run_coroutine_threadsafe(fn, self._loop).result(5)  # type: ignore[arg-type]

    def cut(self) -> int:
        """Close every connection through the proxy now; returns how many were cut."""

        async def cut_all() -> int:
            pairs = list(self._pairs)
            for pair in pairs:
                for w in pair:
                    w.transport.abort()
            return len(pairs)

        return asyncio.run_coroutine_threadsafe(cut_all(), self._loop).result(5)

    def stall(self) -> None:
        self._flowing.clear()

    def resume_forwarding(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()

        async def shut() -> None:
            self._server.close()
            await self._server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
