"""The command line: ``python -m transport_demo`` (or ``transport-demo``) runs the server in the
foreground, with uvicorn's usual logging."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from . import logs
from .app import create_app
from .backend import make_hub
from .server import DemoServer, PortInUseError, bind_socket, uvicorn_config
from .settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="transport-demo",
        description="Serve the long polling, SSE and WebSocket demo (and client.html at /).",
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1; a classroom: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--heartbeat-interval", type=float, metavar="SECONDS")
    parser.add_argument("--poll-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--resume-grace", type=float, metavar="SECONDS")
    parser.add_argument(
        "--redis",
        dest="redis_url",
        metavar="URL",
        help="keep connections in this Redis (redis://127.0.0.1:6379/0), so that several server "
        "processes act as one (docs/scaling.md)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N worker processes on one port (needs --redis: they share no memory)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="an allowed Origin, e.g. http://10.0.0.5:8000 or http://localhost:* (repeatable; "
        "replaces the default list)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workers = args.workers
    del args.workers
    options = {key: value for key, value in vars(args).items() if value is not None}
    try:
        settings = Settings(**options)
        sock = bind_socket(settings.host, settings.port)
    except (ValidationError, PortInUseError) as exc:
        print(f"transport-demo: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        if not settings.redis_url:
            print(
                "transport-demo: --workers needs --redis URL: worker processes share no memory, "
                "so without a shared store a client's next request would meet another worker's "
                "'unknown_connection' (docs/scaling.md).",
                file=sys.stderr,
            )
            return 2
        return run_workers(options, settings, sock, workers)
    hub = make_hub(settings)
    port = sock.getsockname()[1]
    server = DemoServer(uvicorn_config(create_app(settings, hub=hub), settings, port=port), hub)
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    print(f"transport-demo: open http://{shown}:{port}/ in a browser (Ctrl+C stops)", flush=True)
    logs.install_filters()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its clean shutdown
        return 130
    return 0


def run_workers(
    options: dict[str, object], settings: Settings, sock: socket.socket, workers: int
) -> int:
    """``workers`` processes share ``sock`` (the kernel hands each new TCP connection to any of
    them: a load balancer with no stickiness) and one Redis. Each builds its app from
    ``TRANSPORT_DEMO_*`` variables, set here from the command line."""
    from uvicorn.supervisors import Multiprocess

    for key, value in options.items():
        text = ",".join(value) if isinstance(value, list | tuple) else str(value)
        os.environ[f"TRANSPORT_DEMO_{key.upper()}"] = text
    port = sock.getsockname()[1]
    config = uvicorn_config(
        "transport_demo.app:create_app_from_env", settings, port=port, factory=True, workers=workers
    )
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    print(
        f"transport-demo: open http://{shown}:{port}/ in a browser ({workers} workers on Redis; "
        "Ctrl+C stops)",
        flush=True,
    )
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
