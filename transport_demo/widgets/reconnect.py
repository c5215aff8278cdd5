"""The reconnect exercise (notebook 04, section 7): the student's reconnect loop, written in
JavaScript and run in this browser page against the live server.

The student writes two functions in the widget's text area (``reconnect_starter.js`` is where
they start; ``notebooks/solutions/reconnect.js`` is one answer):

* ``connect(url)`` opens a WebSocket to ``url`` and keeps it: after a close that is not final,
  wait (backoff with jitter), then open a new socket that resumes with
  ``?connection_id=…&last_seq=…``;
* ``listen(url, getTicket)`` opens an ``EventSource`` on a stream that needs a one-use ticket
  (``url + "?ticket=" + await getTicket()``), and once the browser has given up
  (``readyState === CLOSED``) gets a fresh ticket and opens a new one.

**Run the check** (or :meth:`ReconnectExercise.run`) runs ``widgets/js/reconnect_check.js`` in the
page: three WebSocket clients cut three times by the server (close 1012) while it publishes numbered
messages, then a takeover (4000); an EventSource whose own reconnection fails (401). The report —
lost, doubled and out-of-order seqs, the delays the code chose, pass or fail — shows in the widget
and reaches the kernel as :attr:`ReconnectExercise.result`, which
:func:`~transport_demo.lab.exercises.reconnect.check_reconnect` prints in a later cell.

The check uses the teaching endpoints ``/lessons/publish``, ``/lessons/cut``, ``/lessons/login``,
``/lessons/ticket`` and ``/lessons/sse/private``: a server in classroom mode does not serve them.
Without a browser (a headless run) nothing runs and ``result`` stays empty.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .browser import _HasUrl, page_url

__all__ = ["ReconnectExercise", "starter_code"]

JS = Path(__file__).with_name("js")


@cache
def _read(name: str) -> str:
    return (JS / name).read_text(encoding="utf-8")


def starter_code() -> str:
    """The code the exercise starts from: both functions, with the reconnecting left to do."""
    return _read("reconnect_starter.js")


class ReconnectExercise(anywidget.AnyWidget):
    """The student's JavaScript in a text area, run and checked in this page.

    ``ReconnectExercise(server)`` starts from :func:`starter_code`; ``source=`` gives other code.
    Edit in the widget and press **Run the check**, or from the kernel: :meth:`load` a file,
    :meth:`run`; read :attr:`result` and :attr:`passed` in a later cell (a cell cannot wait for the
    page: see :mod:`transport_demo.widgets.browser`).
    """

    _esm = _read("reconnect_check.js") + _read("reconnect_widget.js")
    _css = _read("widget.css") + _read("reconnect.css")

    url = traitlets.Unicode().tag(sync=True)
    source = traitlets.Unicode().tag(sync=True)  # both ways: the kernel loads, the page edits
    run_count = traitlets.Int(0).tag(sync=True)  # kernel or button -> page: run the check
    done_count = traitlets.Int(0).tag(sync=True)  # page -> kernel: the run_count last run
    status = traitlets.Unicode("idle").tag(sync=True)  # page -> kernel: idle, running, done
    result: traitlets.Dict[str, Any] = traitlets.Dict().tag(sync=True)  # page -> kernel

    def __init__(self, server: str | _HasUrl, source: str | None = None, **options: Any) -> None:
        super().__init__(
            url=page_url(server),
            source=starter_code() if source is None else source,
            **options,
        )

    def load(self, path: str | Path) -> None:
        """Put the code of the file at ``path`` in the text area (a solution, your own file)."""
        self.source = Path(path).read_text(encoding="utf-8")

    def run(self) -> None:
        """Have the page run the check on the code in the text area; the report comes back to
        :attr:`result` when the page is done (a few seconds; read it in a later cell)."""
        self.run_count += 1

    @property
    def passed(self) -> bool | None:
        """True or False after a run; None before any run reached the kernel."""
        passed = self.result.get("passed")
        return passed if isinstance(passed, bool) else None
