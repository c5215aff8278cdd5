"""Where the server can be reached: the one place that builds its URLs.

* :func:`server_url` — the server's own address (``http://127.0.0.1:8000``): what code on this
  machine connects to. A wildcard bind (``0.0.0.0``, ``::``) is shown as the loopback address of
  its family, and an IPv6 literal is put in brackets (RFC 3986, section 3.2.2).
* :func:`endpoint_url` — one endpoint under a base URL (``…/poll``, ``ws://…/ws?…``): what the
  clients connect to; ``http``/``https`` become ``ws``/``wss`` for a WebSocket.
* :func:`browser_url` — the link a person should open: the same address when Python runs on its
  own, but the Jupyter server's proxy (jupyter-server-proxy's ``<base>/proxy/<port>/``) when the
  code runs inside a Jupyter server that has it. There the browser can reach only the Jupyter
  server (JupyterHub, Binder, a remote JupyterLab): ``127.0.0.1`` means the student's laptop.

How the Jupyter server's address is found, first that answers:

1. ``JUPYTERHUB_PUBLIC_URL`` (absolute; set by JupyterHub when its public URL is configured), else
   ``JUPYTERHUB_SERVICE_PREFIX`` (``/user/NAME/``; set by JupyterHub, Binder included, for every
   single-user server): the link is then root-relative, which a link in the notebook resolves
   against JupyterLab's own page.
2. A plain Jupyter server: the running servers it lists (``jupyter_server.serverapp.
   list_running_servers()``, the ``jpserver-PID.json`` files in the runtime directory) matched by
   process id to this process or one of its ancestors (a kernel is its server's child; a terminal's
   shell too). Its ``base_url`` gives a root-relative link (``/proxy/8000/``), not its ``url``: the
   address a server knows for itself is not always the one the browser uses (an SSH tunnel, a
   reverse proxy in front), and the link is opened from JupyterLab's own page anyway.

A relative link is not clickable as printed text: ``RunningServer._repr_html_`` shows it as a link
in a notebook.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "browser_url",
    "display_host",
    "endpoint_url",
    "jupyter_base_url",
    "proxied_url",
    "server_url",
]


def display_host(host: str) -> str:
    """The address a client on this machine uses for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def server_url(host: str, port: int, path: str = "", scheme: str = "http") -> str:
    """``scheme://host:port`` + ``path`` for a server bound to ``host``; IPv6 in brackets."""
    shown = display_host(host)
    try:
        if ipaddress.ip_address(shown).version == 6:
            shown = f"[{shown}]"
    except ValueError:  # a name, not a literal
        pass
    return f"{scheme}://{shown}:{port}{path}"


def endpoint_url(base_url: str, path: str, query: str = "", *, websocket: bool = False) -> str:
    """``base_url`` + ``path`` (+ ``?query``); for a WebSocket, ``http``/``https`` become
    ``ws``/``wss``."""
    url = base_url.rstrip("/") + path
    if websocket and url.startswith("http"):
        url = "ws" + url[4:]
    return f"{url}?{query}" if query else url


def proxied_url(base: str, port: int) -> str:
    """jupyter-server-proxy's URL for ``port`` under a Jupyter server whose base URL is ``base``."""
    return base.rstrip("/") + f"/proxy/{port}/"


def _ancestors(pid: int) -> list[int]:
    """``pid`` and its ancestors, nearest first (Linux's /proc; elsewhere just the parent)."""
    chain = [pid]
    for _ in range(32):
        try:
            stat = Path(f"/proc/{chain[-1]}/stat").read_text()
        except OSError:
            break
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and ")"
        if parent <= 1:
            break
        chain.append(parent)
    if len(chain) == 1:
        chain.append(os.getppid())
    return chain


def _running_servers() -> list[dict[str, Any]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return []
    return list(list_running_servers())


def jupyter_base_url(
    environ: Mapping[str, str] | None = None,
    servers: Iterable[Mapping[str, Any]] | None = None,
    pid: int | None = None,
) -> str | None:
    """The base URL a browser uses for the Jupyter server this process runs under, or ``None``.

    ``environ``, ``servers`` (as ``list_running_servers()`` gives them) and ``pid`` default to
    this process's; tests pass their own.
    """
    environ = os.environ if environ is None else environ
    public = environ.get("JUPYTERHUB_PUBLIC_URL", "")
    if "://" in public:
        return public
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if prefix.startswith("/"):
        return prefix
    chain = _ancestors(os.getpid() if pid is None else pid)
    found = {
        int(info["pid"]): info for info in (_running_servers() if servers is None else servers)
    }
    for ancestor in chain:
        if ancestor in found:
            return str(found[ancestor].get("base_url") or "/")
    return None


def _has_server_proxy() -> bool:
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def _proxy_reaches(host: str) -> bool:
    """jupyter-server-proxy's ``/proxy/<port>/`` connects to ``localhost``: a loopback or wildcard
    bind is reachable that way, a bind to one other address is not."""
    if host in ("", "0.0.0.0", "::", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def browser_url(host: str, port: int, environ: Mapping[str, str] | None = None) -> str:
    """The URL of client.html for a person's browser (see the module docstring)."""
    if _proxy_reaches(host) and _has_server_proxy():
        base = jupyter_base_url(environ)
        if base is not None:
            return proxied_url(base, port)
    return server_url(host, port, "/")
