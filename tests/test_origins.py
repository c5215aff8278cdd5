"""The Origin rules (transport_demo/server/origins.py, docs/protocol.md "Origins"): the server's
own origin
as the request's ``Host`` names it (what a page behind jupyter-server-proxy sends), and ``null``
only on a loopback bind. The real proxy: tests/test_proxy_jupyter.py."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from transport_demo import RunningServer, Settings
from transport_demo.server.app import create_app
from transport_demo.server.origins import (
    OriginPolicy,
    check_null_origin,
    is_loopback,
    same_origin_as_host,
)


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("https://hub.example", "hub.example", True),
        ("http://127.0.0.1:8888", "127.0.0.1:8888", True),
        ("https://hub.example", "hub.example:443", True),  # the default port, spelled out
        ("https://HUB.example", "hub.example", True),  # host names ignore case
        ("http://[::1]:8888", "[::1]:8888", True),
        ("https://hub.example", "hub.example:8443", False),
        ("https://evil.example", "hub.example", False),
        ("https://hub.example.evil.example", "hub.example", False),
        ("null", "hub.example", False),
        ("https://hub.example/path", "hub.example", False),  # not an origin
        ("ftp://hub.example", "hub.example", False),
    ],
)
def test_same_origin_as_host(origin: str, host: str, same: bool) -> None:
    assert same_origin_as_host(origin, host) is same


def test_star_never_covers_null() -> None:
    policy = OriginPolicy(["*"])
    assert policy.allows("https://anything.example")
    assert not policy.allows("null")
    assert OriginPolicy(["null"]).allows("null")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("classroom.lan", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_null_is_dropped_from_the_default_list_off_loopback() -> None:
    assert "null" in Settings().allowed_origins
    assert "null" in Settings(host="::1").allowed_origins
    for host in ("0.0.0.0", "10.0.0.5", "::"):
        assert "null" not in Settings(host=host).allowed_origins
        assert "http://localhost:*" in Settings(host=host).allowed_origins
    assert check_null_origin("0.0.0.0", ("a", "null"), explicit=False) == ("a",)


def test_null_listed_explicitly_off_loopback_is_an_error(monkeypatch: Any) -> None:
    with pytest.raises(ValidationError, match="sandboxed iframe"):
        Settings(host="0.0.0.0", allowed_origins=("http://10.0.0.5:8000", "null"))
    monkeypatch.setenv("TRANSPORT_DEMO_ALLOWED_ORIGINS", "null")
    with pytest.raises(ValidationError, match="sandboxed iframe"):
        Settings(host="10.0.0.5")
    assert Settings(host="127.0.0.1").allowed_origins == ("null",)  # loopback: allowed


@pytest.mark.anyio
async def test_null_refused_by_cors_and_the_websocket_check_off_loopback() -> None:
    # Built, not bound: servers in tests listen on 127.0.0.1 only.
    app = create_app(Settings(host="0.0.0.0"))
    assert not app.state.origins.allows("null", "10.0.0.5:8000")
    assert app.state.origins.allows("http://localhost:3000", "10.0.0.5:8000")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as http:
        for origin, allowed in [("null", False), ("http://localhost:3000", True)]:
            answer = await http.options(
                "/poll",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert ("access-control-allow-origin" in answer.headers) is allowed, origin


def handshake(server: RunningServer, host: str, origin: str) -> int:
    """The status of a WebSocket handshake sent with these ``Host`` and ``Origin`` headers, as a
    browser behind a proxy that keeps ``Host`` (jupyter-server-proxy does) would send it."""
    request = (
        "GET /ws HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Origin: {origin}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_websocket_accepts_the_origin_its_host_names(make_server: Any) -> None:
    # hub.example: the hub's public name, known to the server (JUPYTERHUB_PUBLIC_URL or
    # allowed_hosts); an unknown Host is refused whatever the Origin (test_hardening.py).
    server = make_server(allowed_origins=["http://localhost:*"], allowed_hosts=["hub.example"])
    assert handshake(server, "hub.example", "https://hub.example") == 101
    assert handshake(server, "127.0.0.1:8888", "http://127.0.0.1:8888") == 101
    # Another site's page sends its own origin with our Host: refused before the upgrade.
    assert handshake(server, "hub.example", "https://evil.example") == 403
    assert handshake(server, "hub.example", "null") == 403  # not in this list


def test_http_cors_refuses_a_foreign_origin_even_with_a_matching_host(make_server: Any) -> None:
    # A same-origin page needs no CORS (its browser sends no preflight); a foreign one gets none.
    server = make_server(allowed_origins=["http://localhost:*"])
    answer = httpx.options(
        f"{server.url}/poll",
        headers={
            "Host": "hub.example",
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
