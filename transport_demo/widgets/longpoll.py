"""The long-polling widget."""

from __future__ import annotations

from ..clients import LongPollClient
from .client_widget import TransportWidget


class LongPollWidget(TransportWidget):
    """A live long-polling client: watch polls held and answered, timeouts and echoes."""

    client_class = LongPollClient
    title = "HTTP long polling"
