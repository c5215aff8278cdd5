"""``create_app(settings)``: the FastAPI application with the transports, /stats and /."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from .. import __version__
from . import gc_policy, http_errors, lessons, logs, longpoll, sse, websocket, webtransport
from .backend import Backend, make_hub
from .certificates import Certificate
from .gatekeeper import Gatekeeper
from .hot_paths import WEBSOCKET, Endpoint, HotPaths
from .join_page import join_page as join_page_html
from .lan import is_wildcard, lan_address
from .origins import HostPolicy, OriginPolicy
from .protocol import Transport
from .settings import Settings

CLIENT_PAGE = "client.html"

# FastAPI's native OpenTelemetry support asks the environment whether a provider is configured on
# every request and WebSocket: a tenth of a long poll's CPU time (docs/benchmarks.md). Nothing
# here exports telemetry, so it is off; an app that wants it can wrap ours.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


ROUTERS: dict[Transport, APIRouter] = {
    Transport.LONG_POLLING: longpoll.router,
    Transport.SSE: sse.router,
    Transport.WEBSOCKET: websocket.router,
    # GET /webtransport; the sessions themselves are HTTP/3's, beside uvicorn (webtransport.py)
    Transport.WEBTRANSPORT: webtransport.router,
}
"""Each transport's router: the server side's registration against the transport table
(:mod:`transport_demo.server.transports`)."""

HOT_PATHS: dict[tuple[str, str], Endpoint] = {
    ("POST", "/poll"): longpoll.poll_endpoint,
    ("GET", "/sse"): sse.sse_endpoint,
    (WEBSOCKET, "/ws"): websocket.websocket_endpoint,
}
"""The routes also served as plain ASGI endpoints (:mod:`.hot_paths`), by method and path."""


class DemoApp(FastAPI):
    """FastAPI, with the hot paths (``hot_paths``, :mod:`.hot_paths`) answered before its
    middleware stack and routing; ``None``: every request goes through FastAPI."""

    hot_paths: HotPaths | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot_paths
        endpoint = hot.endpoint_for(scope) if hot is not None else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        assert hot is not None
        scope["app"] = self  # as Starlette sets it: the endpoints find the state there
        await hot.serve(endpoint, scope, receive, send)


async def _unused(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware objects :class:`HotPaths` only asks (never called)."""
    raise RuntimeError("not an application")


def create_app(
    settings: Settings | None = None,
    *,
    hub: Backend | None = None,
    port: int | None = None,
    certificate: Certificate | None = None,
) -> DemoApp:
    """The application; ``app.state.hub`` is its :class:`~transport_demo.server.backend.Backend`
    (the
    memory hub, or the Redis hub when ``settings.redis_url`` is set).

    The hub is started by the app's lifespan; ending its streams on shutdown is the server's job
    (see ``server.DemoServer``), because uvicorn waits for open connections before the lifespan
    ends.

    WebTransport (``settings.webtransport``, where aioquic is installed) is started by the
    lifespan too, on UDP ``port`` (the bound TCP port; ``settings.port`` when not given) with
    ``certificate`` (``--https``'s; a new one otherwise); ``app.state.webtransport`` is its
    :class:`~transport_demo.server.webtransport.WebTransportService`, or ``None``.
    """
    settings = settings if settings is not None else Settings()
    hub = hub if hub is not None else make_hub(settings)
    policy = OriginPolicy(settings.allowed_origins)
    freezer = gc_policy.Freezer()
    transport_service = None
    if settings.webtransport and webtransport.available():
        transport_service = webtransport.WebTransportService(
            hub, settings, policy, host_policy(settings), certificate
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        if transport_service is not None:
            await transport_service.start(settings.port if port is None else port)
        freezing = (
            asyncio.create_task(freezer.run(), name="transport-demo-gc-freeze")
            if settings.gc_freeze
            else None
        )
        try:
            yield
        finally:
            if freezing is not None:
                freezing.cancel()
            await hub.close()  # ends every stream: the WebTransport sessions close themselves
            if transport_service is not None:
                await transport_service.close()

    app = DemoApp(
        title="transport-demo",
        version=__version__,
        summary="Long polling, Server-Sent Events, WebSocket and WebTransport, side by side.",
        lifespan=lifespan,
        telemetry=TELEMETRY_OFF,
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.origins = policy
    app.state.webtransport = transport_service
    app.add_middleware(http_errors.BodyLimit, limit=settings.max_envelope_bytes)
    # Host and Origin allow-lists before anything else runs (gatekeeper.py); inside CORS, so that
    # preflights are answered as before.
    app.add_middleware(Gatekeeper, hosts=host_policy(settings), origins=policy)
    # Outermost, so that errors carry CORS headers too and a page can read them. Browsers enforce
    # CORS on the HTTP endpoints; the WebSocket Origin check is in websocket.py.
    cors_options: dict[str, Any] = {
        "allow_origin_regex": policy.regex,
        "allow_methods": ["GET", "POST"],
        # Authorization: the lessons' ticket exchange (a fetch may send it; EventSource cannot).
        "allow_headers": ["Authorization", "Content-Type", "Last-Event-ID"],
        "max_age": 600,
    }
    app.add_middleware(CORSMiddleware, **cors_options)
    if settings.plain_hot_paths:  # the same checks, made by the same classes, in the same order
        app.hot_paths = HotPaths(
            HOT_PATHS,
            cors=CORSMiddleware(_unused, **cors_options),
            gatekeeper=Gatekeeper(_unused, hosts=host_policy(settings), origins=policy),
            body_limit=http_errors.BodyLimit(_unused, limit=settings.max_envelope_bytes),
        )
    http_errors.install(app)
    for router in ROUTERS.values():
        app.include_router(router)
    if not settings.classroom:
        # Teaching demos under /lessons, not the contract; not served to a room of strangers
        # (their logins and streams are outside every limit, and client.html never uses them).
        app.include_router(lessons.router)

    async def current_stats() -> dict[str, Any]:
        # asyncio tasks alive on the server's loop: a leak shows here as a number that only grows.
        # gc_freezes: how often the GC policy froze the heap (settings.gc_freeze). Not the frozen
        # object count: gc.get_freeze_count() walks them all (tens of ms with 10,000 connections).
        return {
            **(await hub.astats()),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "gc_freezes": freezer.count,
        }

    cached_stats = StatsCache(current_stats, CLASSROOM_STATS_SECONDS if settings.classroom else 0)

    @app.get("/stats", tags=["monitoring"], summary="Connection counts and per-connection state")
    async def stats(request: Request) -> dict[str, Any]:
        """Counts by transport and state, totals, uptime, and connections by their first 8
        characters: never a full id (a full id is the key to a connection) and never a text.

        In classroom mode the answer is at most a second old (one build of up to 1,000 rows a
        second, however many students ask), and the per-connection list goes to this machine
        (loopback: the instructor) only; everyone else gets the totals."""
        answer = await cached_stats.get()
        if settings.classroom and not (request.client and is_this_machine(request.client.host)):
            return {
                key: value
                for key, value in answer.items()
                if key not in ("connection_list", "connection_list_truncated")
            }
        return answer

    @app.get("/join", response_class=HTMLResponse, include_in_schema=False)
    async def join_page(request: Request) -> HTMLResponse:
        """The join URL and its QR code, large, for a projector (classroom mode)."""
        port = request.scope["server"][1] if request.scope.get("server") else settings.port
        page = join_page_html(settings.join_url(port), settings)
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def client_page() -> HTMLResponse:
        return HTMLResponse(client_html(), headers={"Cache-Control": "no-cache"})

    return app


def create_app_from_env() -> DemoApp:
    """The app with its settings from ``TRANSPORT_DEMO_*`` variables: what each worker process
    builds under ``--workers`` (uvicorn imports it by name, ``factory=True``).

    A worker is a spawned process: it starts with fresh logging, which uvicorn configures before
    it loads this factory, so the id-redacting filters are installed here, after uvicorn's
    ``configure_logging()``, where they stay (otherwise the workers log full connection ids).
    """
    logs.install_filters()
    return create_app(Settings())


def is_this_machine(address: str) -> bool:
    """Whether a client at ``address`` is this machine's own browser or kernel: the loopback
    address ``localhost`` resolves to (127.0.0.1 or ::1). A student on the LAN never has it."""
    return address in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


CLASSROOM_STATS_SECONDS = 1.0
"""How old a classroom's /stats answer may be."""


class StatsCache:
    """The last /stats answer, reused for ``seconds`` (0: always fresh, as outside a classroom)."""

    def __init__(self, build: Callable[[], Awaitable[dict[str, Any]]], seconds: float) -> None:
        self._build = build
        self._seconds = seconds
        self._answer: dict[str, Any] | None = None
        self._at = 0.0

    async def get(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._answer is None or now - self._at >= self._seconds:
            self._answer, self._at = await self._build(), now
        return self._answer


def host_policy(settings: Settings) -> HostPolicy:
    """The ``Host`` names this server answers for
    (:class:`~transport_demo.server.origins.HostPolicy`):
    on every interface, also the machine's LAN address and host name."""
    extra = list(settings.allowed_hosts or ())
    if is_wildcard(settings.host):
        extra += [lan_address(), socket.gethostname(), socket.getfqdn()]
    return HostPolicy(settings.host, join_host=settings.join_host, extra=extra)


def client_html() -> str:
    """The browser client shipped in the package (the top-level client.html is a link to it)."""
    page = resources.files("transport_demo").joinpath("static", CLIENT_PAGE)
    if page.is_file():
        return page.read_text(encoding="utf-8")
    return "<!doctype html><title>transport-demo</title><p>client.html is not installed.</p>"
