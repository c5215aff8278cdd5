"""The server's URLs, built in one place (transport_demo/server/urls.py): its own address, IPv6
literals
in brackets, and the link for a person's browser inside a Jupyter server (``browser_url``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from transport_demo.server import urls


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("::", "http://[::1]:8000"),
        ("fe80::1", "http://[fe80::1]:8000"),
        ("localhost", "http://localhost:8000"),
    ],
)
def test_server_url(host: str, url: str) -> None:
    assert urls.server_url(host, 8000) == url
    assert urls.server_url(host, 8000, "/", scheme="ws") == "ws" + url[4:] + "/"


def test_running_server_urls(make_server: Any) -> None:
    server = make_server()
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.ws_url == f"ws://127.0.0.1:{server.port}"
    assert httpx.get(server.url + "/stats").status_code == 200


def test_browser_url_outside_jupyter(make_server: Any, monkeypatch: Any) -> None:
    for name in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(urls, "_running_servers", list)  # no Jupyter server around
    server = make_server()
    assert server.browser_url == f"http://127.0.0.1:{server.port}/"
    assert httpx.get(server.browser_url).status_code == 200


def test_browser_url_on_jupyterhub_and_binder(monkeypatch: Any) -> None:
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert urls.browser_url("127.0.0.1", 8000) == "/user/ada/proxy/8000/"
    assert urls.browser_url("0.0.0.0", 8000) == "/user/ada/proxy/8000/"
    # A public URL configured on the hub: an absolute link.
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example/user/ada/")
    assert urls.browser_url("127.0.0.1", 8000) == "https://hub.example/user/ada/proxy/8000/"
    # jupyter-server-proxy reaches only localhost: a bind to another address gets its own URL.
    assert urls.browser_url("10.0.0.5", 8000) == "http://10.0.0.5:8000/"


def test_notebook_display_is_the_browser_link(make_server: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    server = make_server()
    shown = server._repr_html_()
    assert f'<a href="/user/ada/proxy/{server.port}/" target="_blank"' in shown
    assert "running" in shown


def test_browser_url_without_jupyter_server_proxy(monkeypatch: Any) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.setattr(urls, "_has_server_proxy", lambda: False)
    assert urls.browser_url("127.0.0.1", 8000) == "http://127.0.0.1:8000/"


def test_jupyter_base_url_from_the_running_servers() -> None:
    """A plain JupyterLab: the server whose process is this one's parent (or further up)."""
    env: dict[str, str] = {}
    here = os.getpid()
    parent = os.getppid()
    servers = [
        {"pid": 999_999_999, "url": "http://localhost:9999/other/", "base_url": "/other/"},
        {"pid": parent, "url": "http://localhost:8888/lab-base/", "base_url": "/lab-base/"},
    ]
    # Root-relative: the address the server knows for itself may not be the browser's.
    assert urls.jupyter_base_url(env, servers, here) == "/lab-base/"
    assert urls.proxied_url("/lab-base/", 8000) == "/lab-base/proxy/8000/"
    assert urls.proxied_url("/", 8000) == "/proxy/8000/"
    assert urls.jupyter_base_url(env, servers[:1], here) is None  # another user's server
    # The hub's variables come first: a single-user server's own URL is internal to the hub.
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert urls.jupyter_base_url(hub, servers, here) == "/user/ada/"


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_command_line_prints_a_working_ipv6_url() -> None:
    command = [sys.executable, "-m", "transport_demo", "--host", "::1", "--port", "0"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line.split("open ", 1)[1].split(" ", 1)[0]
            assert url.startswith("http://[::1]:") and url.endswith("/")
            answer = None
            deadline = time.monotonic() + 10
            while answer is None and time.monotonic() < deadline:
                try:  # the line is printed just before uvicorn starts serving
                    answer = httpx.get(url, timeout=2)
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert answer is not None and answer.status_code == 200
            assert "transport-demo" in answer.text
        finally:
            process.terminate()
            process.wait(10)
