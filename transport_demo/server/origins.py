"""The Origin allow-list: one list drives CORS on the HTTP endpoints and the WebSocket check.

An entry is an exact origin (``http://10.0.0.5:8000``), an origin with any port
(``http://localhost:*``), ``null`` (a page opened from a file), or ``*`` (any web origin: only for
a closed classroom network; ``*`` never covers ``null``).

Two more rules (docs/protocol.md, "Origins"):

* **Same origin as the request's host.** An ``Origin`` whose host and port are the request's
  ``Host`` is the page that server itself served, and is always allowed. This is what makes
  client.html work behind jupyter-server-proxy (JupyterLab, JupyterHub, Binder): the proxy copies
  the browser's request headers, ``Host`` included, to the server (its ``proxy_request_headers``),
  so a page at ``https://hub.example/user/NAME/proxy/8000/`` sends ``Origin: https://hub.example``
  with ``Host: hub.example``. A page on another site sends its own origin with our ``Host`` and is
  refused. ``X-Forwarded-Host`` is not consulted: neither jupyter-server-proxy nor JupyterHub's
  proxy needs it, and trusting it would let anything that can set a header choose the answer.
* **``null`` only on loopback.** ``null`` is the origin of a page opened from a file, but also of
  any site's sandboxed iframe, so allowing it admits every site. It is allowed only while the
  server listens on a loopback address (the default); with any other bind it is dropped from the
  default list, and listing it explicitly is an error (:func:`check_null_origin`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

__all__ = [
    "HostPolicy",
    "OriginPolicy",
    "check_null_origin",
    "host_name",
    "is_loopback",
    "jupyterhub_hosts",
    "origin_regex",
]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback literals (``127.0.0.0/8``, ``::1``); a wildcard bind
    (``0.0.0.0``, ``::``, empty) or any other address is not."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_null_origin(host: str, allowed: tuple[str, ...], explicit: bool) -> tuple[str, ...]:
    """The allow-list for a server bound to ``host``: ``null`` only on loopback.

    ``explicit``: the list was given by the user (an error then) rather than the default (from
    which ``null`` is dropped quietly).
    """
    if is_loopback(host) or "null" not in allowed:
        return allowed
    if explicit:
        raise ValueError(
            f"The origin 'null' cannot be allowed on a server bound to {host!r}: 'null' is also "
            "the origin of any site's sandboxed iframe. Serve the page from the server instead "
            "of opening it as a file, or bind to 127.0.0.1."
        )
    return tuple(entry for entry in allowed if entry != "null")


def origin_regex(allowed: Iterable[str]) -> str:
    """A regular expression matching exactly the allowed origins (for CORS and :func:`allowed`)."""
    parts = []
    for entry in allowed:
        entry = entry.strip().rstrip("/")
        if entry == "*":
            parts.append(r"(?!null$).*")
        elif entry.endswith(":*"):
            parts.append(re.escape(entry[:-2]) + r"(?::[0-9]{1,5})?")
        else:
            parts.append(re.escape(entry))
    return "^(?:" + "|".join(parts or ["(?!)"]) + ")$"


def _host_port(authority: str, scheme: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``authority`` with the scheme's default port filled in."""
    try:
        parts = urlsplit(f"{scheme}://{authority}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    return parts.hostname, port if port is not None else DEFAULT_PORTS.get(scheme)


def same_origin_as_host(origin: str, host: str) -> bool:
    """True when ``origin`` (``scheme://host[:port]``) names the request's ``Host``."""
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme not in ("http", "https") or "/" in authority:
        return False
    return _host_port(authority, scheme) == _host_port(host, scheme)


class OriginPolicy:
    """Decides whether a request's ``Origin`` may use the server."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)
        self.regex = origin_regex(self.allowed)
        self._pattern = re.compile(self.regex)

    def allows(self, origin: str | None, host: str | None = None) -> bool:
        """True for an allowed origin, the server's own origin, or no ``Origin`` at all; never
        for an ``Origin`` with userinfo (``http://evil@127.0.0.1:8000``: no browser sends one,
        and it would pass for its host).

        No ``Origin`` header means no browser sent it (browsers always send one on a WebSocket
        handshake), and cross-site hijacking needs a browser; command-line clients may connect.
        The server's own origin is the one whose host is the request's ``Host`` (module docstring).
        """
        if origin is None:
            return True
        if "@" in origin:
            return False
        if host and same_origin_as_host(origin, host):
            return True
        return self._pattern.fullmatch(origin) is not None


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, lowercased, without port, brackets or a trailing dot
    (``"[::1]:8000"`` → ``"::1"``, ``"Example.COM.:80"`` → ``"example.com"``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def jupyterhub_hosts(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], bool]:
    """The hub's public host names, from what JupyterHub tells a user's server
    (``JUPYTERHUB_PUBLIC_URL``, ``JUPYTERHUB_PUBLIC_HUB_URL``, ``JUPYTERHUB_HOST``), and whether
    this process runs under a hub at all (``JUPYTERHUB_SERVICE_PREFIX``)."""
    env = os.environ if environ is None else environ
    names = []
    for key in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_HOST"):
        value = env.get(key, "").strip()
        if value:
            name = urlsplit(value if "//" in value else "//" + value).hostname
            if name:
                names.append(name.lower())
    return tuple(names), bool(env.get("JUPYTERHUB_SERVICE_PREFIX"))


class HostPolicy:
    """Decides whether a request's ``Host`` names this server: the defence against DNS rebinding.

    A rebinding page (``http://evil.example:8000``, whose name the attacker then points at
    127.0.0.1) talks to this server as its own origin: its ``Origin`` and ``Host`` agree, so the
    origin rules admit it, and its same-origin ``GET`` requests carry no ``Origin`` at all. What
    it cannot change is the ``Host`` header, which names the attacker's domain. So a request is
    served only when its ``Host`` is one of: this machine's loopback names and addresses, the
    bound address, the join host (classroom), the names in ``extra`` (``allowed_hosts``), and the
    hub's public host names when JupyterHub gives them. ``"*"`` in ``extra`` turns the check off.

    Under JupyterHub with the server on loopback and no public name known, any ``Host`` is
    accepted: a browser can reach such a server only through the hub's authenticated proxy
    (jupyter-server-proxy forwards the hub's ``Host``), never by rebinding a name to the kernel's
    own loopback, which is not the student's machine.
    """

    def __init__(
        self,
        bound_host: str,
        *,
        join_host: str | None = None,
        extra: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        names = {host_name(name) for name in (bound_host, join_host or "", *extra) if name}
        hub_names, under_hub = jupyterhub_hosts(environ)
        names.update(hub_names)
        self.any = "*" in names or (under_hub and not hub_names and is_loopback(bound_host))
        names.discard("")
        for wildcard in ("0.0.0.0", "::"):
            names.discard(wildcard)
        self.names = frozenset(names)

    def allows(self, host_header: str | None) -> bool:
        """True when ``host_header`` names this server (or is absent: HTTP/1.0, no browser)."""
        if self.any or host_header is None:
            return True
        host = host_name(host_header)
        return host in self.names or is_loopback(host)
