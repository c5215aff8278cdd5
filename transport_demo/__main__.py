"""The command line: ``python -m transport_demo`` (or ``transport-demo``) runs the server in the
foreground, with uvicorn's usual logging."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from pydantic import ValidationError

from .server import join_page, logs
from .server.app import create_app
from .server.backend import make_hub
from .server.https_server import HttpsServer
from .server.launcher import (
    DemoServer,
    PortInUseError,
    bind_socket,
    certificate_for,
    uvicorn_config,
)
from .server.settings import Settings
from .server.socket_guard import raise_open_file_limit
from .server.urls import server_url

CLI_POLL_HOLD_JITTER = 0.2
"""The command line's hold jitter (Settings' own default is 0: exact holds, for the notebooks)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="transport-demo",
        description="Serve the long polling, SSE and WebSocket demo (and client.html at /).",
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1; a classroom: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument(
        "--https",
        action="store_true",
        default=None,
        help="serve over TLS: HTTP/2 by ALPN, HTTP/1.1 still accepted (hypercorn); a certificate "
        "for 127.0.0.1, localhost and the join host is made at start (its SHA-256 is printed) "
        "unless --cert and --key are given",
    )
    parser.add_argument(
        "--webtransport",
        action=argparse.BooleanOptionalAction,
        help="serve WebTransport over HTTP/3 on UDP at the same port number (default: on where "
        "aioquic is installed; --no-webtransport turns it off; see docs/webtransport.md)",
    )
    parser.add_argument("--cert", dest="cert_file", metavar="FILE", help="--https: certificate")
    parser.add_argument("--key", dest="key_file", metavar="FILE", help="--https: its key")
    parser.add_argument("--heartbeat-interval", type=float, metavar="SECONDS")
    parser.add_argument("--poll-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--resume-grace", type=float, metavar="SECONDS")
    parser.add_argument(
        "--poll-hold-jitter",
        type=float,
        metavar="FRACTION",
        help="hold each long poll between (1 - FRACTION) and 1 x the poll timeout, so that polls "
        "opened together (a class pressing Start, every client after a restart) drift apart "
        "instead of expiring in step (default here 0.2; 0: every hold is the poll timeout)",
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        help="freeze what survived into the garbage collector's permanent generation after "
        "start-up and every two seconds, against full-collection pauses with thousands of "
        "connections (default: on; see transport_demo/server/gc_policy.py)",
    )
    parser.add_argument(
        "--classroom",
        action="store_true",
        default=None,
        help="serve a room: listen on every interface, print the join URL (the LAN address) and "
        "its QR code, allow that origin (never null), turn the per-address limits on",
    )
    parser.add_argument(
        "--join-host", metavar="ADDRESS", help="the address students use (default: the LAN one)"
    )
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
        "--allow-host",
        action="append",
        dest="allowed_hosts",
        metavar="NAME",
        help="a Host name the server answers for, besides loopback, the bound address and the "
        "join host, e.g. the name of a proxy in front of it (repeatable; '*': any; see "
        "docs/threat-model.md, DNS rebinding)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        metavar="SECONDS",
        help="close a socket whose request headers are not complete within SECONDS (default 10)",
    )
    parser.add_argument(
        "--max-sockets-per-address",
        type=int,
        metavar="N",
        help="open TCP sockets one client address may hold (default: no limit; a classroom: 50)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="an allowed Origin, e.g. http://10.0.0.5:8000 or http://localhost:* (repeatable; "
        "replaces the default list; null only with a loopback --host)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; its exit status: 0, 2 for a bad option or a busy port, and 130 when
    Ctrl+C (SIGINT) stopped it, at any moment of start-up or serving (with --workers, uvicorn's
    supervisor handles the signal itself and ends with 0)."""
    # Ctrl+C is ours from here on, whatever SIGINT disposition this process was given. A process
    # started with SIGINT *ignored* keeps ignoring it: a background job of a non-interactive shell
    # (`cmd &` in a script: how CI and test runners often start a suite, and its tests start this
    # command) or a child of a Jupyter kernel (ipykernel ignores SIGINT). uvicorn catches SIGINT
    # only while it serves, so a Ctrl+C during start-up was lost, and after its clean shutdown it
    # re-raised the signal into "ignore": exit 0, not 130. Raising KeyboardInterrupt from the
    # handler is no cure: one raised while an import finishes is "ignored" by Python (a weakref
    # callback) or turns into another error, and start-up imports (FastAPI builds its routes,
    # uvicorn loads its protocols late). So the handler only *records* the signal and, once the
    # server exists, asks it to stop (as uvicorn's own handler does); start-up looks at the
    # record before it serves, and the exit status reads it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    status = serve(parse_args(argv))
    return 130 if _interrupt.seen else status


class _Interrupt:
    """What :func:`_on_sigint` saw, and the server it stops once there is one."""

    seen = False
    server: DemoServer | HttpsServer | None = None


_interrupt = _Interrupt()


def _on_sigint(signum: int, frame: object) -> None:
    _interrupt.seen = True
    if _interrupt.server is not None:
        _interrupt.server.should_exit = True


def serve(args: argparse.Namespace) -> int:
    """Run the server :func:`main` asked for, in the foreground, until it stops."""
    # Every socket is a file: a few hundred idle ones must meet the server's own bounds, not the
    # soft "ulimit -n" (1,024 by default, 128 in some containers) that would fail every accept.
    raise_open_file_limit()
    workers = args.workers
    del args.workers
    options = {key: value for key, value in vars(args).items() if value is not None}
    # This process is the server's own, so the GC policy for thousands of connections is the
    # default here (not in Settings: inside a notebook kernel it would freeze the kernel's objects).
    if "gc_freeze" not in options and "TRANSPORT_DEMO_GC_FREEZE" not in os.environ:
        options["gc_freeze"] = True
    # Likewise a crowd's defaults: 10,000 polls opened at once with exact 30 s holds expire in
    # step, answered up to 2.2 s late (docs/benchmarks.md); jittered, within ~230 ms. Every hold
    # stays at most the poll timeout. start_server() keeps exact holds: a lesson times them.
    if "poll_hold_jitter" not in options and "TRANSPORT_DEMO_POLL_HOLD_JITTER" not in os.environ:
        options["poll_hold_jitter"] = CLI_POLL_HOLD_JITTER
    try:
        settings = Settings(**options)
        sock = bind_socket(settings.host, settings.port)
    except (ValidationError, PortInUseError) as exc:
        print(f"transport-demo: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        if settings.https:
            print(
                "transport-demo: --https serves one process; leave out --workers", file=sys.stderr
            )
            return 2
        if not settings.redis_url:
            print(
                "transport-demo: --workers needs --redis URL: worker processes share no memory, "
                "so without a shared store a client's next request would meet another worker's "
                "'unknown_connection' (docs/scaling.md).",
                file=sys.stderr,
            )
            return 2
        # Workers share one TCP socket; a UDP port has one owner, so no worker serves
        # WebTransport (docs/webtransport.md).
        options["webtransport"] = False
        # Workers install the filters themselves (create_app_from_env); this is for the
        # supervising process's own lines.
        return run_workers(options, settings, sock, workers)
    hub = make_hub(settings)
    port = sock.getsockname()[1]
    certificate = None
    if settings.https:
        try:
            certificate = certificate_for(settings)
        except (OSError, ValueError) as exc:
            print(f"transport-demo: the certificate cannot be used: {exc}", file=sys.stderr)
            return 2
    # WebTransport (on by default) listens on UDP at the same port, with that certificate if any.
    app = create_app(settings, hub=hub, port=port, certificate=certificate)
    server: DemoServer | HttpsServer = DemoServer(uvicorn_config(app, settings, port=port), hub)
    if certificate is not None:
        server = HttpsServer(app, settings, hub, certificate)
    _interrupt.server = server
    if _interrupt.seen:  # Ctrl+C during start-up (see main)
        return 130
    if settings.classroom:
        print_classroom(settings, port)
    else:
        url = server_url(settings.host, port, "/", scheme=settings.scheme)
        print(f"transport-demo: open {url} in a browser (Ctrl+C stops)")
    if isinstance(server, HttpsServer):
        print(f"  certificate SHA-256 {server.certificate.fingerprint}")
    sys.stdout.flush()
    logs.install_filters()
    # After its clean shutdown on Ctrl+C, uvicorn re-raises SIGINT: recorded, 130 (main). The
    # asyncio runner leaves SIGINT alone: the handler is not Python's default one.
    server.run(sockets=[sock])
    return 0


def print_classroom(settings: Settings, port: int) -> None:
    """The join URL, its QR code and the limits, for the instructor's terminal."""
    url = settings.join_url(port)
    print(f"transport-demo classroom: students open {url}")
    print(f"  on the projector: {url}join    (Ctrl+C stops)")
    qr = join_page.qr_text(url)
    if qr is not None:
        print(qr, end="")
    print("  allowed origins: " + ", ".join(settings.allowed_origins))
    for line in join_page.limits_text(settings):
        print("  " + line)


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
        "transport_demo.server.app:create_app_from_env",
        settings,
        port=port,
        factory=True,
        workers=workers,
    )
    url = server_url(settings.host, port, "/")
    print(f"transport-demo: open {url} in a browser ({workers} workers on Redis; Ctrl+C stops)")
    sys.stdout.flush()
    logs.install_filters()  # after uvicorn_config: creating the Config configures logging
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
