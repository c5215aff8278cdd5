"""Request bodies and WebSocket frames as pydantic models, and one strict way to parse them.

Types are strict (``"5"`` is not a seq, ``true`` is not a number) so that a confused client gets a
clear error instead of a guess. Unknown fields are ignored, so clients can grow.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidJSON, InvalidRequest, UnsupportedMediaType

ConnectionId = Annotated[str, Field(min_length=1, max_length=64)]
Seq = Annotated[int, Field(ge=0)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class PollRequest(_Body):
    """``POST /poll``: every field optional (see docs/protocol.md)."""

    connection_id: ConnectionId | None = None
    text: str | None = None
    last_seq: Seq | None = None


class SSEMessageRequest(_Body):
    """``POST /sse/message``."""

    connection_id: ConnectionId
    text: str


class WebSocketFrame(_Body):
    """A client's WebSocket text frame: ``{"message": "text"}``."""

    message: str


Model = TypeVar("Model", bound=_Body)


def parse_json(model: type[Model], raw: bytes | str, *, empty_ok: bool = False) -> Model:
    """Validate JSON text into ``model``; raise :class:`InvalidJSON` or :class:`InvalidRequest`.

    With ``empty_ok`` an empty body means ``{}`` (``curl -X POST /poll`` opens a connection).
    """
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] in ("json_invalid", "json_type") for error in errors):
            raise InvalidJSON("The body is not valid JSON (UTF-8): " + errors[0]["msg"]) from None
        raise InvalidRequest(_describe(errors)) from None


def check_json_content_type(content_type: str | None, body: bytes = b"") -> None:
    """A body must be sent as JSON (``application/json`` or ``…+json``); anything else is refused,
    and so is a body without a ``Content-Type``. Only an empty body may come without one
    (``curl -X POST /poll`` opens a connection). Requiring the JSON type means a foreign page
    cannot send a body without a CORS preflight (``text/plain`` needs none)."""
    if content_type is None:
        if body.strip():
            raise UnsupportedMediaType(
                "Send the body as JSON with Content-Type: application/json (it had none)."
            )
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send the body as JSON with Content-Type: application/json (got {media_type!r})."
        )


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid request: " + "; ".join(parts) + "."


def openapi_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the endpoint parses itself."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
