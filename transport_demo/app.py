"""``create_app(settings)``: the FastAPI application with the three transports, /stats and /."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.telemetry import TelemetryConfig

from . import (
    __version__,
    classroom,
    gc_policy,
    http_errors,
    lessons,
    logs,
    longpoll,
    sse,
    websocket,
)
from .backend import Backend, make_hub
from .origins import OriginPolicy
from .settings import Settings

CLIENT_PAGE = "client.html"

# FastAPI's native OpenTelemetry support asks the environment whether a provider is configured on
# every request and WebSocket: a tenth of a long poll's CPU time (docs/benchmarks.md). Nothing
# here exports telemetry, so it is off; an app that wants it can wrap ours.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None, *, hub: Backend | None = None) -> FastAPI:
    """The application; ``app.state.hub`` is its :class:`Hub`.

    The hub is started by the app's lifespan; ending its streams on shutdown is the server's job
    (see ``server.DemoServer``), because uvicorn waits for open connections before the lifespan
    ends.
    """
    settings = settings if settings is not None else Settings()
    hub = hub if hub is not None else make_hub(settings)
    policy = OriginPolicy(settings.allowed_origins)
    freezer = gc_policy.Freezer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
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
            await hub.close()

    app = FastAPI(
        title="transport-demo",
        version=__version__,
        summary="Long polling, Server-Sent Events and WebSocket, side by side.",
        lifespan=lifespan,
        telemetry=TELEMETRY_OFF,
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.origins = policy
    app.add_middleware(http_errors.BodyLimit, limit=settings.max_envelope_bytes)
    # Outermost, so that errors carry CORS headers too and a page can read them. Browsers enforce
    # CORS on the HTTP endpoints; the WebSocket Origin check is in websocket.py.
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=policy.regex,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Last-Event-ID"],
        max_age=600,
    )
    http_errors.install(app)
    app.include_router(longpoll.router)
    app.include_router(sse.router)
    app.include_router(websocket.router)
    app.include_router(lessons.router)  # teaching demos under /lessons, not the contract

    @app.get("/stats", tags=["monitoring"], summary="Connection counts and per-connection state")
    async def stats(request: Request) -> dict[str, Any]:
        """Counts by transport and state, totals, uptime, and connections by their first 8
        characters: never a full id (a full id is the key to a connection) and never a text."""
        # asyncio tasks alive on the server's loop: a leak shows here as a number that only grows.
        # gc_freezes: how often the GC policy froze the heap (settings.gc_freeze). Not the frozen
        # object count: gc.get_freeze_count() walks them all (tens of ms with 10,000 connections).
        return {
            **(await hub.astats()),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "gc_freezes": freezer.count,
        }

    @app.get("/join", response_class=HTMLResponse, include_in_schema=False)
    async def join_page(request: Request) -> HTMLResponse:
        """The join URL and its QR code, large, for a projector (classroom mode)."""
        port = request.scope["server"][1] if request.scope.get("server") else settings.port
        page = classroom.join_page(settings.join_url(port), settings)
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def client_page() -> HTMLResponse:
        return HTMLResponse(client_html(), headers={"Cache-Control": "no-cache"})

    return app


def create_app_from_env() -> FastAPI:
    """The app with its settings from ``TRANSPORT_DEMO_*`` variables: what each worker process
    builds under ``--workers`` (uvicorn imports it by name, ``factory=True``).

    A worker is a spawned process: it starts with fresh logging, which uvicorn configures before
    it loads this factory, so the id-redacting filters are installed here, after uvicorn's
    ``configure_logging()``, where they stay (otherwise the workers log full connection ids).
    """
    logs.install_filters()
    return create_app(Settings())


def client_html() -> str:
    """The browser client shipped in the package (the top-level client.html is a link to it)."""
    page = resources.files("transport_demo").joinpath("static", CLIENT_PAGE)
    if page.is_file():
        return page.read_text(encoding="utf-8")
    return "<!doctype html><title>transport-demo</title><p>client.html is not installed.</p>"
