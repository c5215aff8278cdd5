"""Server settings: one object, from keyword arguments or ``TRANSPORT_DEMO_*`` variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ALLOWED_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "null")


class Settings(BaseSettings):
    """Everything the server can be tuned with.

    Defaults are chosen so that a class never hits a limit by accident; notebooks pass short
    intervals (``heartbeat_interval=2``) so that things visibly happen. Every field can also be set
    from the environment, e.g. ``TRANSPORT_DEMO_POLL_TIMEOUT=10`` or
    ``TRANSPORT_DEMO_ALLOWED_ORIGINS=http://10.0.0.5:8000,http://localhost:*``.
    """

    model_config = SettingsConfigDict(env_prefix="TRANSPORT_DEMO_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    heartbeat_interval: float = Field(default=15.0, gt=0, description="Seconds between heartbeats.")
    poll_timeout: float = Field(default=30.0, gt=0, description="Seconds a long poll is held.")
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
        "for ~38 KiB more memory per WebSocket (docs/benchmarks.md).",
    )

    redis_url: str | None = Field(
        default=None,
        description="Keep connections in this Redis (redis://host:port/db), so that several "
        "server processes act as one (docs/scaling.md); None: in this process's memory.",
    )

    allowed_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_ORIGINS

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # From the environment the list comes as one comma-separated string.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

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
