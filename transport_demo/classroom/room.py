"""Classroom mode: the instructor's machine serves the room, students' browsers join.

``start_classroom()`` (or ``start_server(classroom=True)``, or ``python -m transport_demo
--classroom``) listens on every interface, finds the machine's LAN address (:mod:`.lan`: no packet
is sent), allows exactly that origin (never ``null``), turns the per-address and per-connection
limits on (:data:`~transport_demo.server.settings.CLASSROOM_DEFAULTS`), and gives the join URL and
a QR
code of it: in the notebook, and at ``/join`` for the projector. The live class view is
:class:`transport_demo.widgets.ClassroomView`.

The join page, its QR code and the limits as text are :mod:`transport_demo.server.join_page`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..server.join_page import join_card, qr_svg
from ..server.protocol import Transport

if TYPE_CHECKING:
    from ..server.launcher import RunningServer
    from ..widgets.classroom import ClassroomView

__all__ = ["Classroom", "start_classroom"]


class Classroom:
    """A server for the room: ``join_url``, ``qr_svg``, ``view()``, ``broadcast(text)``,
    ``cut(transport)``, ``restart()``, ``stop()``. In a notebook it shows as the link and its QR
    code."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self._views: list[ClassroomView] = []

    @property
    def join_url(self) -> str:
        """What students open: ``http://<LAN address>:<port>/``."""
        return self.server.settings.join_url(self.server.port)

    @property
    def projector_url(self) -> str:
        """The page with the URL and the QR code in large, for the projector."""
        return self.join_url + "join"

    @property
    def qr_svg(self) -> str | None:
        return qr_svg(self.join_url)

    def broadcast(self, text: str) -> int:
        """Send ``text`` to every connection; returns how many took it."""
        return self.server.hub.broadcast(text)

    def cut(self, transport: Transport | str | None = None) -> int:
        """Cut every stream and held poll of ``transport`` (all three: ``None``); see
        :meth:`~transport_demo.server.hub.Hub.disconnect_all`."""
        return self.server.hub.disconnect_all(None if transport is None else Transport(transport))

    def restart(self) -> None:
        """Restart the server on the same port, keeping its connections: every client resumes."""
        self.server.restart()

    def stop(self) -> None:
        """Stop the class views' sampling and the server."""
        for view in self._views:
            view.stop()
        self.server.stop()

    def view(self, **options: Any) -> ClassroomView:
        """The live class view widget (ipywidgets)."""
        from ..widgets.classroom import ClassroomView

        view = ClassroomView(self.server, **options)
        self._views.append(view)
        return view

    def _repr_html_(self) -> str:
        return join_card(self.join_url)

    def __repr__(self) -> str:
        return f"<Classroom {self.join_url}>"


def start_classroom(port: int = 8000, **options: Any) -> Classroom:
    """``start_server(port, classroom=True, **options)`` for the room; see :class:`Classroom`.

    Options override the classroom defaults, e.g. ``join_host="10.1.2.3"`` when the machine has
    several networks, or ``max_connections_per_address=None`` behind a proxy.
    """
    from ..server.launcher import start_server

    return Classroom(start_server(port, classroom=True, **options))
