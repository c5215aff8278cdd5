"""Server settings: one object, from keyword arguments or ``TRANSPORT_DEMO_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .lan import is_wildcard, lan_address
from .origins import check_null_origin
from .urls import server_url

DEFAULT_ALLOWED_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "null")
HTTPS_LOOPBACK_ORIGINS = ("https://localhost:*", "https://127.0.0.1:*")
"""Added to the default list with ``https=True``: the server's own pages are then https."""

CLASSROOM_DEFAULTS: dict[str, Any] = {
    "host": "0.0.0.0",
    "max_connections_per_address": 20,
    "max_messages_per_second": 5.0,
    "message_burst": 20,
    "max_message_bytes": 4096,
    "max_connections": 2000,
    "max_sockets_per_address": 50,
}
"""What ``classroom=True`` sets, unless given: a room of up to ~100 browsers, each with a few tabs
of client.html (three connections a tab), typing by hand. docs/protocol.md, "Limits"."""


class Settings(BaseSettings):
    """Everything the server can be tuned with.

    Defaults are chosen so that a class never hits a limit by accident; notebooks pass short
    intervals (``heartbeat_interval=2``) so that things visibly happen. Every field can also be set
    from the environment, e.g. ``TRANSPORT_DEMO_POLL_TIMEOUT=10`` or
    ``TRANSPORT_DEMO_ALLOWED_ORIGINS=http://10.0.0.5:8000,http://localhost:*``.

    ``allowed_origins`` keeps ``null`` (a page opened from a file) only while ``host`` is a
    loopback address; see :mod:`transport_demo.server.origins`.
    """

    model_config = SettingsConfigDict(env_prefix="TRANSPORT_DEMO_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    https: bool = Field(
        default=False,
        description="Serve over TLS, HTTP/2 chosen by ALPN (h2) and HTTP/1.1 still accepted "
        "(hypercorn); a certificate is made at start unless cert_file and key_file are given.",
    )
    webtransport: bool = Field(
        default=True,
        description="Serve WebTransport over HTTP/3 on UDP at the HTTP port's number (where "
        "aioquic is installed; a busy UDP port is a warning, not an error). "
        "docs/webtransport.md.",
    )
    udp_receive_buffer: int | None = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="SO_RCVBUF asked for WebTransport's UDP socket, in bytes (the kernel caps it "
        "at net.core.rmem_max; None keeps the kernel's default, ~208 KiB, which drops datagrams "
        "when thousands of sessions arrive at once: docs/benchmarks.md).",
    )
    cert_file: Path | None = Field(default=None, description="--https: the certificate (PEM).")
    key_file: Path | None = Field(default=None, description="--https: its private key (PEM).")

    heartbeat_interval: float = Field(default=15.0, gt=0, description="Seconds between heartbeats.")
    poll_timeout: float = Field(
        default=30.0, gt=0, description="Longest a long poll is held, in seconds."
    )
    poll_hold_jitter: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Hold each poll a random time between (1 - jitter) x poll_timeout and "
        "poll_timeout, so that polls opened together (a class, a restart) drift apart instead of "
        "expiring together for ever; 0.2 is a good value for a server with thousands of clients.",
    )
    poll_expiry: float | None = Field(
        default=None, gt=0, description="Seconds without a poll before removal; 2 x poll_timeout."
    )
    resume_grace: float = Field(
        default=30.0, ge=0, description="Seconds a closed SSE/WebSocket connection can be resumed."
    )
    sse_retry_ms: int = Field(default=1000, ge=0, description="The SSE `retry:` field.")

    max_message_bytes: int = Field(default=64 * 1024, gt=0, description="Largest text (UTF-8).")
    max_queue: int = Field(default=1000, gt=0, description="Events waiting per connection.")
    replay_window: int = Field(default=1000, gt=0, description="Durable events kept for resume.")
    max_connections: int = Field(default=20_000, gt=0)
    ws_compression: bool = Field(
        default=True,
        description="Offer permessage-deflate: ~10 bytes instead of ~170 per small JSON event, "
        "for ~22 KiB more memory per WebSocket with 1 KiB windows (docs/benchmarks.md).",
    )

    plain_hot_paths: bool = Field(
        default=True,
        description="Serve the hot paths (POST /poll, GET /sse, the /ws WebSocket) as plain ASGI "
        "endpoints in front of FastAPI (server/hot_paths.py): the same contract for less CPU and "
        "memory per connection. False: through FastAPI's routes, which also document them.",
    )

    redis_url: str | None = Field(
        default=None,
        description="Keep connections in this Redis (redis://host:port/db), so that several "
        "server processes act as one (docs/scaling.md); None: in this process's memory.",
    )
    gc_freeze: bool = Field(
        default=False,
        description="Move what has survived into the garbage collector's permanent generation "
        "after start-up and every two seconds, so that full collections no longer walk thousands "
        "of connections (seconds of pause); what is frozen is freed by reference counting only. "
        "The command line turns it on: it owns its process; in a notebook kernel it is an opt-in.",
    )

    allowed_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_ORIGINS
    allowed_hosts: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="Host names (or addresses) a request's Host header may name, besides this "
        "machine's loopback names, the bound address and the join host; '*' turns the check off. "
        "Refusing other hosts is what stops DNS rebinding (docs/threat-model.md).",
    )

    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's headers before its socket is closed.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        description="Largest request line and headers, in bytes; past it the answer is 431.",
    )
    max_sockets_per_address: int | None = Field(
        default=None,
        gt=0,
        description="Open TCP sockets one client address may hold in this process (idle ones too); "
        "None: no limit. Classroom mode: 50.",
    )

    classroom: bool = Field(
        default=False,
        description="Serve a room: listen on every interface, allow the join URL's origin (never "
        "`null`), and turn the per-address and per-connection limits on (CLASSROOM_DEFAULTS).",
    )
    join_host: str | None = Field(
        default=None,
        description="The address students' browsers use (the join URL's host); classroom mode "
        "finds the machine's LAN address when not given.",
    )
    max_connections_per_address: int | None = Field(
        default=None, gt=0, description="Connections one client address may hold; None: no limit."
    )
    max_messages_per_second: float | None = Field(
        default=None, gt=0, description="Texts a connection may send a second; None: no limit."
    )
    message_burst: int = Field(
        default=20, gt=0, description="Texts a connection may send at once before the rate applies."
    )

    @model_validator(mode="before")
    @classmethod
    def _classroom_defaults(cls, data: Any) -> Any:
        # Fill in what classroom mode implies, leaving whatever was given explicitly.
        if not isinstance(data, dict) or not _truthy(data.get("classroom", False)):
            return data
        data = {**CLASSROOM_DEFAULTS, **data}
        if data.get("join_host") is None:
            host = str(data["host"])
            data["join_host"] = lan_address() if is_wildcard(host) else host
        if data.get("allowed_origins") is None:
            https = _truthy(data.get("https", False))
            data["allowed_origins"] = classroom_origins(str(data["join_host"]), https=https)
        return data

    @model_validator(mode="after")
    def _certificate_pair(self) -> Settings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        if self.cert_file is not None and not self.https:
            raise ValueError("cert_file and key_file are for https=True (--https)")
        if self.https and "allowed_origins" not in self.model_fields_set and not self.classroom:
            origins = HTTPS_LOOPBACK_ORIGINS + self.allowed_origins
            object.__setattr__(self, "allowed_origins", origins)  # frozen: set once, here
        return self

    @property
    def scheme(self) -> str:
        """``https`` with ``https=True``, else ``http``."""
        return "https" if self.https else "http"

    @model_validator(mode="after")
    def _classroom_never_null(self) -> Settings:
        if self.classroom and "null" in self.allowed_origins:
            raise ValueError(
                "classroom mode never allows the origin 'null': every sandboxed iframe of every "
                "website sends it (docs/protocol.md, Origins)"
            )
        return self

    @field_validator("allowed_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # From the environment the list comes as one comma-separated string.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _null_origin_only_on_loopback(self) -> Settings:
        # ``null`` (a page opened from a file, or any site's sandboxed iframe) only on loopback:
        # dropped from the default list on another bind, an error when listed (origins.py).
        allowed = check_null_origin(
            self.host, self.allowed_origins, "allowed_origins" in self.model_fields_set
        )
        if allowed != self.allowed_origins:
            object.__setattr__(self, "allowed_origins", allowed)  # frozen: set once, here
        return self

    def join_url(self, port: int | None = None) -> str:
        """The address to give students: ``join_host`` (or the bound host; loopback for a server
        that listens on every interface without one) and ``port`` (default: the setting; pass the
        bound one when the setting is 0)."""
        host, chosen = self.join_host or self.host, self.port if port is None else port
        return server_url(host, chosen, "/", scheme=self.scheme)

    @property
    def effective_poll_expiry(self) -> float:
        """Seconds a long-polling connection may go unpolled before it is removed."""
        return self.poll_expiry if self.poll_expiry is not None else 2 * self.poll_timeout

    @property
    def max_envelope_bytes(self) -> int:
        """Largest HTTP body or WebSocket frame accepted.

        A text at the limit can grow up to six-fold when JSON-escaped (a control character becomes
        ``\\u0001``), so the envelope allows for that and a little more; anything larger is refused
        before it is buffered whole.
        """
        return 6 * self.max_message_bytes + 1024


def _truthy(value: object) -> bool:
    # As pydantic reads a bool (True, 1, "yes", "on", "t", ...); anything it refuses is False
    # here, and the field's own validation then reports it.
    try:
        return bool(TypeAdapter(bool).validate_python(value))
    except ValidationError:
        return False


def classroom_origins(join_host: str, *, https: bool = False) -> tuple[str, ...]:
    """The origins classroom mode allows: the join URL's host on any port, and this machine's
    loopback names (the instructor's own browser), with the scheme the room is served on. Never
    ``null``."""
    host = f"[{join_host}]" if ":" in join_host else join_host
    scheme = "https" if https else "http"
    return tuple(f"{scheme}://{name}:*" for name in (host, "localhost", "127.0.0.1"))
