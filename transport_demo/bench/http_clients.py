"""The benchmark's HTTP clients, small enough that 10,000 of them stay cheap (no pool to scan):
HTTP/1.1 keep-alive over asyncio streams, plain or over TLS (:class:`RawHTTP`, :class:`TlsHTTP`),
and HTTP/2 over TLS (:class:`RawH2`: the h2 library keeps the protocol's state, up to the server's
``SETTINGS_MAX_CONCURRENT_STREAMS`` clients share one connection, as a browser's tabs do).

Each counts the bytes its connection wrote and read above TLS (``wire_bytes``): HTTP/1.1 heads and
chunk framing, or HTTP/2 frames with HPACK-coded headers, SETTINGS and WINDOW_UPDATEs included.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hypercorn.config import Config as HypercornConfig

from ..server.https_server import MAX_CONCURRENT_STREAMS
from .system import client_tls

__all__ = ["REQUESTS_PER_CONNECTION", "HTTPClient", "RawH2", "RawHTTP", "TlsHTTP"]


class HTTPClient:
    """What a probe asks of its HTTP connection: whole answers, a streamed body's lines, the
    bytes on the wire, the version spoken."""

    multiplexes = False
    """Whether one client carries several requests at once (HTTP/2): a probe then sends and
    receives on one connection, as a browser does; over HTTP/1.1 it needs two."""

    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def link(self) -> object | None:
        """The open connection under this client (shared by several clients over HTTP/2)."""
        raise NotImplementedError

    @property
    def wire_bytes(self) -> int:
        """Bytes written and read on :attr:`link` so far, above TLS."""
        raise NotImplementedError

    @property
    def version(self) -> str:
        raise NotImplementedError

    async def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> bytes:
        """Send a request and return the whole body; an HTTP error raises ConnectionError."""
        raise NotImplementedError

    def lines(self, path: str) -> AsyncIterator[str]:
        """GET a streamed body and yield its lines (without the line ends)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _split_lines(buffer: bytes, chunk: bytes) -> tuple[list[str], bytes]:
    """The complete lines in ``buffer + chunk``, and what is left of it."""
    *complete, rest = (buffer + chunk).split(b"\n")
    return [line.rstrip(b"\r").decode() for line in complete], rest


class RawHTTP(HTTPClient):
    """One HTTP/1.1 keep-alive connection: ``request()`` for whole answers, ``lines()`` for a
    streamed (chunked) body such as an event stream. Over TLS when given a context."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(port)
        self.tls = tls
        self.bytes = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def link(self) -> object | None:
        return self._writer

    @property
    def wire_bytes(self) -> int:
        return self.bytes

    @property
    def version(self) -> str:
        return "HTTP/1.1"

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                "127.0.0.1", self.port, ssl=self.tls
            )
        return self._reader, self._writer

    async def _send(self, method: str, path: str, body: bytes | None, ctype: str) -> None:
        _, writer = await self._open()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        data = head.encode() + b"\r\n" + (body or b"")
        self.bytes += len(data)
        writer.write(data)

    async def _read_line(self) -> bytes:
        assert self._reader is not None
        line = await self._reader.readuntil(b"\r\n")
        self.bytes += len(line)
        return line

    async def _read(self, size: int) -> bytes:
        assert self._reader is not None
        data = await self._reader.readexactly(size)
        self.bytes += size
        return data

    async def _head(self) -> tuple[int, dict[str, str]]:
        status_line = await self._read_line()
        if not status_line:
            raise ConnectionError("closed")
        headers: dict[str, str] = {}
        while (line := await self._read_line()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> bytes:
        """Send a request and return the whole body (Content-Length or chunked)."""
        await self._send(method, path, body, ctype)
        status, headers = await self._head()
        if "content-length" in headers:
            data = await self._read(int(headers["content-length"]))
        else:
            data = b"".join([chunk async for chunk in self._chunks()])
        if headers.get("connection", "").lower() == "close":
            # The server ends the connection after this answer (hypercorn does after 1,000
            # requests on one): the next request opens a new one, as any HTTP client would.
            assert self._writer is not None
            self._writer.close()
            self._reader = self._writer = None
        if status >= 400:
            raise ConnectionError(f"HTTP {status} on {path}: {data[:200]!r}")
        return data

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            size = int((await self._read_line()).split(b";")[0], 16)
            if size == 0:
                await self._read_line()
                return
            chunk = await self._read(size + 2)
            yield chunk[:-2]

    async def lines(self, path: str) -> AsyncIterator[str]:
        """GET a streamed body and yield its lines (without the line ends)."""
        await self._send("GET", path, None, "")
        status, _ = await self._head()
        if status != 200:
            raise ConnectionError(f"HTTP {status} on {path}")
        buffer = b""
        async for chunk in self._chunks():
            complete, buffer = _split_lines(buffer, chunk)
            for line in complete:
                yield line

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
            self._reader = self._writer = None


class TlsHTTP(RawHTTP):
    """HTTP/1.1 over TLS to the https targets (ALPN ``http/1.1``)."""

    def __init__(self, port: int) -> None:
        super().__init__(port, client_tls("http/1.1"))


_Event = tuple[str, Any]  # ("headers", status) | ("data", bytes) | ("end", None)


REQUESTS_PER_CONNECTION = HypercornConfig.keep_alive_max_requests
"""Requests the server takes on one connection (hypercorn's ``keep_alive_max_requests``, 1,000,
which the https server keeps): on the next it sends GOAWAY. A browser then opens a new connection
for new streams and keeps the old streams; the h2 library cannot read an old stream after a GOAWAY,
so a client here moves its new requests to a new connection before the server asks."""


class _H2Link:
    """One TLS connection with ALPN ``h2``, shared by up to :data:`MAX_CONCURRENT_STREAMS`
    :class:`RawH2` clients; a reader task hands each stream's events to its queue."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.users = 0
        self.bytes = 0
        self.requests = 0
        self.closed = False
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._streams: dict[int, asyncio.Queue[_Event]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._opening: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._slot = asyncio.Event()  # set when a stream ends: one waiting for a slot may go

    async def ready(self) -> None:
        """Connected (once, however many clients ask at the same time)."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._connect())
        await asyncio.shield(self._opening)

    async def _connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client_tls("h2")
        )
        alpn = self._writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            self.close()
            raise ConnectionError(f"ALPN chose {alpn!r}, not h2")
        self._h2.initiate_connection()
        self._flush()
        self._reading = asyncio.create_task(self._read(reader))

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._writer is not None:
            self.bytes += len(data)
            self._writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                self.bytes += len(data)
                for event in self._h2.receive_data(data):
                    self._dispatch(event)
                self._flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed = True
            for queue in self._streams.values():
                queue.put_nowait(("end", None))

    @property
    def full(self) -> bool:
        """No new stream goes here: closed, or as many requests as the server takes."""
        return self.closed or self.requests >= REQUESTS_PER_CONNECTION

    def _dispatch(self, event: h2.events.Event) -> None:
        queue = self._streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.DataReceived):
            # Credit the window back at once: a reader this fast is not what flow control is for.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if queue is not None:
                queue.put_nowait(("data", event.data))
        elif queue is None:
            return
        elif isinstance(event, h2.events.ResponseReceived):
            queue.put_nowait(("headers", int(dict(event.headers)[b":status"])))
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            queue.put_nowait(("end", None))

    async def open_stream(
        self, method: str, path: str, body: bytes | None, ctype: str
    ) -> tuple[int, asyncio.Queue[_Event]]:
        """A new stream with its request sent; waits for a free slot under the server's limit."""
        await self.ready()
        while self._h2.open_outbound_streams >= self._h2.remote_settings.max_concurrent_streams:
            self._slot.clear()
            await self._slot.wait()
        if self.closed:
            raise ConnectionError("the HTTP/2 connection is closed")
        stream_id = self._h2.get_next_available_stream_id()
        self.requests += 1
        headers = [(":method", method), (":scheme", "https"),
                   (":authority", f"127.0.0.1:{self.port}"), (":path", path)]  # fmt: skip
        if body is not None:
            headers += [("content-type", ctype), ("content-length", str(len(body)))]
        queue: asyncio.Queue[_Event] = asyncio.Queue()
        self._streams[stream_id] = queue
        self._h2.send_headers(stream_id, headers, end_stream=body is None)
        if body is not None:
            self._h2.send_data(stream_id, body, end_stream=True)
        self._flush()
        return stream_id, queue

    def end_stream(self, stream_id: int) -> None:
        """Forget a stream; reset it if it is still open (a stream its client gave up on)."""
        if self._streams.pop(stream_id, None) is None:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            if not self.closed and stream_id in self._h2.streams:
                stream = self._h2.streams[stream_id]
                if not stream.closed:
                    self._h2.reset_stream(stream_id)
                    self._flush()
        self._slot.set()

    def close(self) -> None:
        self.closed = True
        if self._reading is not None:
            self._reading.cancel()
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None


# One pool per event loop (a link belongs to the loop that opened it): port -> links.
_links: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, list[_H2Link]]] = (
    weakref.WeakKeyDictionary()
)


class RawH2(HTTPClient):
    """HTTP/2 over TLS: one client per probe, up to :data:`MAX_CONCURRENT_STREAMS` clients on
    one connection (the server's ``SETTINGS_MAX_CONCURRENT_STREAMS``: each probe keeps one
    stream open, its event stream or its held poll). Create it inside the loop that uses it."""

    multiplexes = True
    per_connection = MAX_CONCURRENT_STREAMS

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self._used: list[_H2Link] = []  # every connection this client had a stream on
        self._link = self._assign()
        self._open: set[tuple[_H2Link, int]] = set()
        self._closed = False

    def _assign(self) -> _H2Link:
        """The pool's open connection with room for one more client, or a new one."""
        links = _links.setdefault(asyncio.get_running_loop(), {}).setdefault(self.port, [])
        links[:] = [link for link in links if not link.full]
        if not links or links[-1].users >= self.per_connection:
            links.append(_H2Link(self.port))
        link = links[-1]
        link.users += 1
        self._used.append(link)
        return link

    @property
    def link(self) -> object | None:
        return None if self._link.closed else self._link

    @property
    def wire_bytes(self) -> int:
        return sum(link.bytes for link in self._used)

    @property
    def version(self) -> str:
        return "HTTP/2"

    async def _exchange(
        self, method: str, path: str, body: bytes | None, ctype: str
    ) -> AsyncIterator[_Event]:
        if self._link.full:  # its streams go on; new ones take a new connection
            self._link = self._assign()
        link = self._link
        stream_id, queue = await link.open_stream(method, path, body, ctype)
        self._open.add((link, stream_id))
        try:
            while (event := await queue.get())[0] != "end":
                yield event
        finally:
            self._open.discard((link, stream_id))
            link.end_stream(stream_id)

    async def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> bytes:
        status, data = 0, b""
        async for kind, value in self._exchange(method, path, body, ctype):
            if kind == "headers":
                status = value
            else:
                data += value
        if not status:
            raise ConnectionError(f"no answer on {path}")
        if status >= 400:
            raise ConnectionError(f"HTTP {status} on {path}: {data[:200]!r}")
        return data

    async def lines(self, path: str) -> AsyncIterator[str]:
        buffer = b""
        async for kind, value in self._exchange("GET", path, None, ""):
            if kind == "headers":
                if value != 200:
                    raise ConnectionError(f"HTTP {value} on {path}")
                continue
            complete, buffer = _split_lines(buffer, value)
            for line in complete:
                yield line

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for link, stream_id in list(self._open):
            link.end_stream(stream_id)
        for link in self._used:
            link.users -= 1
            if link.users == 0:
                link.close()
