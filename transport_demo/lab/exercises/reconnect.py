"""The reconnect exercise in JavaScript (notebook 04, section 7): its verdict, in the kernel.

The check itself runs in the browser page (``widgets/js/reconnect_check.js``, inside
``transport_demo.widgets.reconnect.ReconnectExercise``): only there do the browser's own
``WebSocket`` and ``EventSource`` run. The page sends its report back to the kernel; this module
prints it like every other exercise check. It takes any object with a ``result`` dict (the widget),
or the dict itself, so that the lab does not import the widgets.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import report

__all__ = ["check_reconnect", "summary"]

NAME = "reconnect loop in JavaScript"


class _HasResult(Protocol):
    @property
    def result(self) -> dict[str, Any]: ...


def summary(result: dict[str, Any]) -> list[str]:
    """What the page saw, one line per WebSocket client and one for the EventSource: lost,
    doubled and out-of-order seqs, and the delays the code chose before each reconnect."""
    lines = []
    ws, es = result.get("websocket"), result.get("eventsource")
    if ws:
        for i, delays in enumerate(ws["delays_ms"]):
            chosen = ", ".join(map(str, delays)) + " ms" if delays else "none"
            lines.append(
                f"WebSocket client {i + 1}: lost {len(ws['lost'][i])}, doubled "
                f"{len(ws['doubled'][i])}, out of order {ws['out_of_order'][i]} "
                f"(of {ws['published']}); delays chosen {chosen}"
            )
    if es:
        chosen = ", ".join(map(str, es["delays_ms"])) + " ms" if es["delays_ms"] else "none"
        lines.append(
            f"EventSource: {es['streams']} opened, {es['tickets']} tickets, {es['heard']} said "
            f"hello; delays after CLOSED {chosen}"
        )
    return lines


def check_reconnect(exercise: _HasResult | dict[str, Any]) -> bool:
    """Print the verdict of the page's last run of the reconnect check, then what it saw.

    Three WebSocket clients run the student's ``connect(url)`` while the server cuts them three
    times (close 1012) and publishes numbered messages: nothing may be lost, doubled or out of
    order; each reconnect must resume (``?connection_id=…&last_seq=…`` with the last seq received)
    after a delay with jitter (the clients must not all wait the same time: RFC 6455 §7.2.3); a
    close 4000 (superseded) is final. ``listen(url, getTicket)`` must open a new ``EventSource``
    with a fresh ticket once the browser has given up (``readyState`` CLOSED: WHATWG HTML §9.2.3),
    and not while it is still reconnecting by itself.
    """
    result = exercise if isinstance(exercise, dict) else exercise.result
    if not result:
        return report(
            NAME,
            [
                "no report from the page yet: press “Run the check” in the widget (a browser must "
                "show this notebook), wait for its verdict, then run this cell again"
            ],
        )
    problems = [str(problem) for problem in result.get("problems", [])]
    if not problems and result.get("passed") is not True:
        problems = ["the page's report says it did not pass"]
    passed = report(NAME, problems)
    for line in summary(result):
        print("  " + line)
    for note in result.get("notes", []):  # what could not be tested from where the page is
        print("  note:", note)
    return passed
