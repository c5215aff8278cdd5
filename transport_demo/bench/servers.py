"""The servers the benchmark measures, each run in its own process (``python -m
transport_demo.bench.servers FAMILY PORT``), all with the same pushing hook.

Families:

* ``ours`` — this package's app (``create_app``), exactly as the command line runs it:
  WebTransport too, on UDP at the TCP port's number.
* ``ours-redis`` — the same on the Redis named by ``BENCH_REDIS_URL`` (``--redis``), in
  ``BENCH_WORKERS`` worker processes sharing one port (``--workers``; default 1).
* ``ours-https`` — the same app over TLS as ``start_server(https=True)`` serves it (hypercorn:
  HTTP/2 by ALPN, HTTP/1.1 still accepted), with the run's certificate (``system.CERT_ENV``).
* ``fastapi`` — the bare baselines on the same stack: a FastAPI WebSocket endpoint, a FastAPI SSE
  endpoint (FastAPI's own ``EventSourceResponse`` and one ``asyncio.Queue``) and a FastAPI
  long-poll endpoint (one ``asyncio.Event``), each a dozen lines: no envelope, no bookkeeping.
* ``websockets`` — a bare ``websockets`` server, no ASGI: the floor.
* ``socketio`` — python-socketio on ASGI (its WebSocket and its long-polling transports).
* ``sse-starlette`` — sse-starlette's ``EventSourceResponse`` with one ``asyncio.Queue``.

Every family answers ``GET /bench/push?to=ID&n=N&rate=R&size=S``: a task on the server's loop then
pushes ``n`` texts of ``size`` characters to connection ``to``, ``rate`` per second (0: as fast as
the connection takes them). Each text starts with the ``time.monotonic_ns()`` it was pushed at;
``CLOCK_MONOTONIC`` is one clock for every process of the machine, so a client in another process
can time the delivery. The baselines send a heartbeat text every ``HEARTBEAT`` seconds (our server
its ``heartbeat`` event, socket.io its ping, sse-starlette its ping comment) and hold a long poll
``HEARTBEAT`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

# At module level: FastAPI reads the endpoints' annotations (strings here) from these globals.
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ..server.app import TELEMETRY_OFF
from .system import bench_certificate, raise_fd_limit, stamp

__all__ = ["FAMILIES", "run"]

FAMILIES = (
    "ours",
    "ours-redis",
    "ours-https",
    "fastapi",
    "websockets",
    "socketio",
    "sse-starlette",
)
HEARTBEAT = float(os.environ.get("BENCH_HEARTBEAT", "5"))
QUEUE_LIMIT = 1000  # the same bound as our max_queue: a burst waits for the client, never grows

Deliver = Callable[[str, str], Awaitable[None]]


async def push_series(deliver: Deliver, to: str, n: int, rate: float, size: int) -> None:
    """Push ``n`` stamped texts to ``to``: at ``rate`` per second, or back to back when 0."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = loop.time()
    for _ in range(n):
        if interval:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
        await deliver(to, stamp(size))


def push_params(query: str) -> tuple[str, int, float, int]:
    values = {key: items[0] for key, items in parse_qs(query).items()}
    return (
        values.get("to", ""),
        int(values.get("n", "1")),
        float(values.get("rate", "0")),
        int(values.get("size", "64")),
    )


class GcPauses:
    """Full (generation 2) garbage collections in this process: how many, the longest, the
    total — a stalled loop shows up as heartbeat lag, and this tells whether the collector did it.
    ``GET /bench/gc`` answers with the figures since the previous call."""

    def __init__(self) -> None:
        self.count = 0
        self.max_ms = 0.0
        self.total_ms = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._started) * 1000
        self.count += 1
        self.max_ms = max(self.max_ms, pause)
        self.total_ms += pause

    def take(self) -> bytes:
        figures = {"count": self.count, "max_ms": round(self.max_ms, 1),
                   "total_ms": round(self.total_ms, 1)}  # fmt: skip
        self.count, self.max_ms, self.total_ms = 0, 0.0, 0.0
        return json.dumps(figures).encode()


gc_pauses = GcPauses()


_memory_mark: list[Any] = []  # the tracemalloc snapshot /bench/memory?mark took


def memory_report(mark: bool) -> bytes:
    """``/bench/memory``: with ``mark``, remember a tracemalloc snapshot; else what was allocated
    since, by source file (Python allocations only: zlib's and the kernel's are not traced)."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return json.dumps({"tracing": False}).encode()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    if mark or not _memory_mark:
        _memory_mark[:] = [snapshot]
        return json.dumps({"tracing": True, "marked": True}).encode()
    diff = snapshot.compare_to(_memory_mark[0], "filename")
    top = [
        {"file": stat.traceback[0].filename, "bytes": stat.size_diff, "blocks": stat.count_diff}
        for stat in diff
        if stat.size_diff > 0
    ]
    total = sum(stat.size_diff for stat in diff)
    return json.dumps({"tracing": True, "bytes": total, "top": top[:30]}).encode()


def with_gc_route(app: Any) -> Any:
    """``app`` with ``GET /bench/gc`` and ``GET /bench/memory`` in front of it."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in ("/bench/gc", "/bench/memory"):
            if scope["path"] == "/bench/gc":
                body = gc_pauses.take()
            else:
                body = memory_report(b"mark" in scope.get("query_string", b""))
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode())]  # fmt: skip
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


_tasks: set[asyncio.Task[None]] = set()


def start_push(deliver: Deliver, query: str) -> None:
    task = asyncio.get_running_loop().create_task(push_series(deliver, *push_params(query)))
    _tasks.add(task)  # keep a reference until it is done
    task.add_done_callback(_tasks.discard)


# -- ours -----------------------------------------------------------------------------------------


def ours_app(
    redis_url: str | None = None,
    *,
    port: int | None = None,
    webtransport: bool = True,
    certificate: Any = None,
) -> Any:
    """Our app as the command line builds it: WebTransport on (UDP at ``port``, the TCP port's
    number, with ``certificate`` if given, as ``--https`` shares its own) unless turned off, as
    the command line turns it off for worker processes (one UDP port has one owner)."""
    from ..server.app import create_app
    from ..server.backend import make_hub
    from ..server.errors import QueueFull
    from ..server.redis_hub import RedisHub
    from ..server.settings import Settings

    # As `python -m transport_demo` runs: the GC policy on unless the environment says otherwise
    # (TRANSPORT_DEMO_* variables reach this process). Not its hold jitter (0.2 there): holds stay
    # exact unless TRANSPORT_DEMO_POLL_HOLD_JITTER is set, so figures compare across runs.
    settings = Settings(
        heartbeat_interval=HEARTBEAT,
        poll_timeout=HEARTBEAT,
        redis_url=redis_url,
        webtransport=webtransport,
    )
    if "TRANSPORT_DEMO_GC_FREEZE" not in os.environ:
        settings = settings.model_copy(update={"gc_freeze": True})
    hub = make_hub(settings)
    app = create_app(settings, hub=hub, port=port, certificate=certificate)

    async def deliver(to: str, text: str) -> None:
        while True:
            try:
                if isinstance(hub, RedisHub):  # on the server's loop: the awaitable form
                    await hub.apublish(to, text)
                else:
                    hub.publish(to, text)
                return
            except QueueFull:  # backpressure: wait for the client to take some
                await asyncio.sleep(0.001)

    @app.get("/bench/push", include_in_schema=False)
    async def bench_push(request: Request) -> dict[str, bool]:
        start_push(deliver, request.url.query)
        return {"ok": True}

    app.state.bench_hub = hub
    if os.environ.get(UDP_RCVBUF_ENV):
        _with_udp_receive_buffer(app, int(os.environ[UDP_RCVBUF_ENV]))
    return app


UDP_RCVBUF_ENV = "BENCH_UDP_RCVBUF"
"""An experiment, off unless set: the receive buffer (bytes, ``SO_RCVBUF``; the kernel caps it at
``net.core.rmem_max``) of the WebTransport server's UDP socket, in place of the server's own
setting (``Settings.udp_receive_buffer``, 4 MiB). ``212992`` (the kernel's usual default) gives
back the socket the server had before it set one: for telling whether datagrams dropped at that
socket are what makes a capacity step late."""


def _with_udp_receive_buffer(app: Any, size: int) -> None:
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        async with inner(started) as state:
            endpoint = app.state.webtransport and app.state.webtransport.endpoint
            if endpoint is not None:  # WebTransport is up
                endpoint.set_receive_buffer(size)
            yield state

    app.router.lifespan_context = lifespan


def ours_redis_app() -> Any:
    """Ours on the Redis named by ``BENCH_REDIS_URL``, with the benchmark's routes: the factory
    each worker process builds (uvicorn imports it by name)."""
    if gc_pauses not in gc.callbacks:  # a worker is a fresh process
        gc.callbacks.append(gc_pauses)
    # Worker processes share the TCP socket; a UDP port has one owner: no WebTransport (as
    # `python -m transport_demo --workers N` runs).
    return with_gc_route(ours_app(os.environ["BENCH_REDIS_URL"], webtransport=False))


# -- bare FastAPI -------------------------------------------------------------------------------


class Channel:
    """A bare connection: one bounded queue, for the stream baselines."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.beats = 0

    async def next_text(self) -> str:
        """The next queued text, or a heartbeat when none came within ``HEARTBEAT`` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), HEARTBEAT)
        except TimeoutError:
            self.beats += 1
            return f"heartbeat {self.beats}"


async def serve_socket(
    channel: Channel,
    send: Callable[[str], Awaitable[None]],
    received: AsyncIterator[str],
    gone: type[BaseException],
) -> None:
    """A bare WebSocket: echo what the client sends, write queued texts and heartbeats, until
    the client goes (``gone`` is how the library says so)."""

    async def echo() -> None:
        with contextlib.suppress(gone):
            async for text in received:
                await channel.queue.put(text)

    echoing = asyncio.create_task(echo())
    try:
        with contextlib.suppress(gone):
            while not echoing.done():
                await send(await channel.next_text())
    finally:
        echoing.cancel()


class PollChannel:
    """A bare long-poll connection: pending texts and one ``asyncio.Event``."""

    def __init__(self) -> None:
        self.pending: deque[str] = deque()
        self.event = asyncio.Event()


def fastapi_app() -> Any:
    app = FastAPI(telemetry=TELEMETRY_OFF)  # the same configuration as ours
    channels: dict[str, Channel] = {}
    polls: dict[str, PollChannel] = {}

    async def deliver(to: str, text: str) -> None:
        if to in polls:
            poll = polls[to]
            while len(poll.pending) >= QUEUE_LIMIT:
                await asyncio.sleep(0.001)
            poll.pending.append(text)
            poll.event.set()
        elif to in channels:
            await channels[to].queue.put(text)

    @app.get("/bench/push")
    async def bench_push(request: Request) -> dict[str, bool]:
        start_push(deliver, request.url.query)
        return {"ok": True}

    @app.websocket("/bare/ws")
    async def bare_ws(websocket: WebSocket, id: str) -> None:
        await websocket.accept()
        channel = channels[id] = Channel()
        await websocket.send_text("open")  # registered: pushes can come
        try:
            await serve_socket(
                channel, websocket.send_text, websocket.iter_text(), WebSocketDisconnect
            )
        finally:
            channels.pop(id, None)

    @app.get("/bare/sse", response_class=EventSourceResponse)
    async def bare_sse(id: str) -> AsyncIterator[ServerSentEvent]:
        channel = channels[id] = Channel()
        try:
            yield ServerSentEvent(raw_data="open")  # registered: pushes can come
            while True:
                yield ServerSentEvent(raw_data=await channel.next_text())
        finally:
            channels.pop(id, None)

    @app.post("/bare/sse/send")
    async def bare_sse_send(request: Request) -> dict[str, bool]:
        body = await request.json()
        await channels[body["id"]].queue.put(body["text"])
        return {"ok": True}

    @app.post("/bare/poll")
    async def bare_poll(request: Request) -> JSONResponse:
        body = await request.json()
        poll = polls.setdefault(body["id"], PollChannel())
        if "text" in body:  # a send is answered at once with its echo
            return JSONResponse([body["text"]])
        if not poll.pending:
            poll.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poll.event.wait(), HEARTBEAT)
        texts = list(poll.pending)
        poll.pending.clear()
        return JSONResponse(texts)

    return app


# -- python-socketio ---------------------------------------------------------------------------


def socketio_app() -> Any:
    import socketio

    # ping_interval is socket.io's heartbeat; the same cadence as the others'.
    sio = socketio.AsyncServer(
        async_mode="asgi", ping_interval=HEARTBEAT, ping_timeout=20, cors_allowed_origins=[]
    )

    async def echo(sid: str, text: str) -> None:
        await sio.emit("echo", text, to=sid)

    sio.on("echo", handler=echo)

    async def deliver(to: str, text: str) -> None:
        await sio.emit("push", text, to=to)

    control = FastAPI(telemetry=TELEMETRY_OFF)

    @control.get("/bench/push")
    async def bench_push(request: Request) -> dict[str, bool]:
        start_push(deliver, request.url.query)
        return {"ok": True}

    return socketio.ASGIApp(sio, other_asgi_app=control)


# -- sse-starlette ------------------------------------------------------------------------------


def sse_starlette_app() -> Any:
    import sse_starlette

    app = FastAPI(telemetry=TELEMETRY_OFF)  # the same configuration as ours
    channels: dict[str, Channel] = {}

    async def deliver(to: str, text: str) -> None:
        await channels[to].queue.put(text)

    @app.get("/bench/push")
    async def bench_push(request: Request) -> dict[str, bool]:
        start_push(deliver, request.url.query)
        return {"ok": True}

    @app.get("/sse")
    async def stream(id: str) -> sse_starlette.EventSourceResponse:
        channel = channels[id] = Channel()

        async def texts() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"data": "open"}  # registered: pushes can come
                while True:
                    yield {"data": await channel.queue.get()}
            finally:
                channels.pop(id, None)

        return sse_starlette.EventSourceResponse(texts(), ping=HEARTBEAT)

    @app.post("/sse/send")
    async def send(request: Request) -> dict[str, bool]:
        body = await request.json()
        await channels[body["id"]].queue.put(body["text"])
        return {"ok": True}

    return app


# -- bare websockets (no ASGI) ---------------------------------------------------------------


async def serve_websockets(port: int) -> None:
    from http import HTTPStatus

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request as WSRequest
    from websockets.http11 import Response

    channels: dict[str, Channel] = {}

    async def deliver(to: str, text: str) -> None:
        await channels[to].queue.put(text)

    def process_request(connection: ServerConnection, request: WSRequest) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/bench/push":
            start_push(deliver, url.query)
            return connection.respond(HTTPStatus.OK, "ok\n")
        if url.path == "/bench/gc":
            return connection.respond(HTTPStatus.OK, gc_pauses.take().decode())
        return None

    async def handler(websocket: ServerConnection) -> None:
        assert websocket.request is not None
        cid = parse_qs(urlsplit(websocket.request.path).query)["id"][0]
        channel = channels[cid] = Channel()
        await websocket.send("open")  # registered: pushes can come

        async def received() -> AsyncIterator[str]:
            async for text in websocket:
                yield str(text)

        try:
            await serve_socket(channel, websocket.send, received(), ConnectionClosed)
        finally:
            channels.pop(cid, None)

    # The same framing as uvicorn's: permessage-deflate on, 1 MiB frames.
    async with serve(
        handler, "127.0.0.1", port, process_request=process_request, ping_interval=None
    ) as server:
        print("ready", flush=True)
        await server.serve_forever()


# -- running one ---------------------------------------------------------------------------------

APPS: dict[str, Callable[[], Any]] = {
    "fastapi": fastapi_app,
    "socketio": socketio_app,
    "sse-starlette": sse_starlette_app,
}


def run(family: str, port: int) -> None:
    """Serve ``family`` on 127.0.0.1:``port`` in this process until it is terminated."""
    raise_fd_limit()
    gc.callbacks.append(gc_pauses)
    if family == "websockets":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_websockets(port))
        return
    import uvicorn

    from ..server.launcher import bind_socket, uvicorn_config
    from ..server.settings import Settings

    sock = bind_socket("127.0.0.1", port)
    workers = int(os.environ.get("BENCH_WORKERS", "1"))
    if family == "ours-redis" and workers > 1:
        from uvicorn.supervisors import Multiprocess

        config = uvicorn_config(
            "transport_demo.bench.servers:ours_redis_app",
            Settings(),
            port=port,
            factory=True,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            Multiprocess(config, sockets=[sock]).run()
        return
    if family == "ours-https":
        from ..server.https_server import HttpsServer

        certificate = bench_certificate()
        app = ours_app(port=port, certificate=certificate)  # WebTransport with --https's own
        https = HttpsServer(with_gc_route(app), Settings(), app.state.bench_hub, certificate)
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            https.run([sock])
        return
    if family in ("ours", "ours-redis"):  # WebTransport on UDP at the same port number
        app = ours_app(os.environ.get("BENCH_REDIS_URL") if family == "ours-redis" else None,
                       port=port)  # fmt: skip
    else:
        app = APPS[family]()
    if family in ("ours", "ours-redis"):
        from ..server.launcher import DemoServer

        server: uvicorn.Server = DemoServer(
            uvicorn_config(
                with_gc_route(app),
                Settings(),
                port=port,
                log_level="warning",
                access_log=False,
            ),
            app.state.bench_hub,
        )
    else:  # the same uvicorn options as ours: httptools, websockets-sansio, 2048 backlog
        # "critical": uvicorn would complain that the baselines' endless streams had to be
        # cancelled at shutdown (they have no shutdown hook; that is what bare means).
        server = uvicorn.Server(
            uvicorn_config(
                with_gc_route(app),
                Settings(),
                port=port,
                ws="websockets-sansio",  # uvicorn's own, without our drain after a 1009
                log_level="critical",
                access_log=False,
            )
        )
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
