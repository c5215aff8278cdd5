"""Where the browser stops you (notebook 03b, section 7): what a page's connections go through when
the page is not in front, measured in a headless Chromium where it lets us, and the radio cost of a
heartbeat on a phone, computed from a stated model.

* :func:`back_forward` — a page with an open WebSocket and an EventSource goes into the
  back/forward cache and comes back: the page's own log (``pagehide``, ``freeze``, timers,
  ``pageshow``, the sockets' events) beside what the server saw while the page was away.
  Needs Playwright and a Chromium; without them it says so and runs nothing.
* :func:`radio_cost` and :func:`radio_table` — the radio resource control (RRC) model of
  *High Performance Browser Networking* (Ilya Grigorik, O'Reilly 2013, ch. 7 "Mobile Networks"
  and ch. 8 "Optimizing for Mobile Networks"): every heartbeat wakes the radio, which then stays
  in a high-power state for a tail of seconds. A model with illustrative numbers, not a
  measurement of any phone.

Everything is synchronous (Playwright runs on a thread of its own), so it runs in a cell.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "LTE",
    "UMTS",
    "BackForward",
    "RadioCost",
    "RadioModel",
    "back_forward",
    "radio_cost",
    "radio_table",
]

VOLTS = 3.7
"""A phone battery's nominal voltage, to turn joules into mAh."""


@dataclass(frozen=True)
class RadioModel:
    """An RRC state machine reduced to what a heartbeat costs: waking an idle radio takes
    ``promotion_s`` at ``promotion_w``; after the last packet the radio stays in each of
    ``tails`` (state, seconds, watts) in turn, then drops to idle, whose power is counted as 0."""

    name: str
    promotion_s: float
    promotion_w: float
    tails: tuple[tuple[str, float, float], ...]

    @property
    def tail_s(self) -> float:
        """Seconds from the last packet to idle."""
        return sum(seconds for _, seconds, _ in self.tails)


UMTS = RadioModel(
    "3G", promotion_s=2.0, promotion_w=0.46, tails=(("DCH", 5.0, 0.8), ("FACH", 12.0, 0.46))
)
"""3G (UMTS/HSPA): DCH for ~5 s after the last packet, then FACH for ~12 s, then idle (HPBN ch. 7,
"3G RRC state machine"; the timers from Qian et al., "Characterizing Radio Resource Allocation for
3G Networks", IMC 2010). Powers of the order those measurements report (DCH ~0.8 W, FACH ~0.46 W);
the promotion from idle (~2 s) is counted at FACH power: an assumption."""

LTE = RadioModel("LTE", promotion_s=0.26, promotion_w=1.21, tails=(("CONNECTED", 11.6, 1.06),))
"""LTE: RRC_CONNECTED with DRX for ~10 s after the last packet, then RRC_IDLE (HPBN ch. 7, "LTE RRC
state machine"; the numbers from Huang et al., "A Close Examination of Performance and Power
Characteristics of 4G LTE Networks", MobiSys 2012: a 260 ms promotion at ~1.21 W, an 11.6 s tail
at ~1.06 W on average)."""


@dataclass(frozen=True)
class RadioCost:
    """What a heartbeat every ``interval_s`` seconds costs under ``model``: the share of time the
    radio is out of idle, and the energy per hour (joules, and mAh at 3.7 V)."""

    model: str
    interval_s: float
    high_fraction: float
    joules_per_hour: float

    @property
    def mah_per_hour(self) -> float:
        return self.joules_per_hour / VOLTS / 3.6


def radio_cost(interval_s: float, model: RadioModel = LTE) -> RadioCost:
    """The radio cost of one tiny heartbeat every ``interval_s`` seconds and nothing else.

    If the next heartbeat comes before the tail ends, the radio never goes idle: it stays in its
    high-power states all the time (and no promotion is paid). Otherwise each heartbeat pays a
    promotion, the whole tail, then idle until the next one. The bytes themselves cost next to
    nothing: the tail is the cost."""
    if interval_s <= 0:
        raise ValueError("the interval must be positive")
    joules, left = 0.0, interval_s
    if interval_s > model.tail_s:
        joules += model.promotion_s * model.promotion_w
    for _, seconds, watts in model.tails:
        spent = min(seconds, left)
        joules += spent * watts
        left -= spent
    busy = min(interval_s, model.tail_s + (model.promotion_s if interval_s > model.tail_s else 0))
    return RadioCost(model.name, interval_s, busy / interval_s, joules * 3600 / interval_s)


@dataclass
class RadioTable:
    """:func:`radio_cost` for several intervals and models, shown as a table."""

    costs: list[RadioCost]

    def __repr__(self) -> str:
        lines = ["heartbeat  radio   out of idle   energy per hour"]
        for cost in self.costs:
            lines.append(
                f"{cost.interval_s:>6g} s   {cost.model:<5} {cost.high_fraction:>9.0%}"
                f"     {cost.joules_per_hour:>6.0f} J  ({cost.mah_per_hour:.0f} mAh)"
            )
        return "\n".join(lines)


def radio_table(intervals: list[float], models: tuple[RadioModel, ...] = (UMTS, LTE)) -> RadioTable:
    """Each interval under each model (HPBN's RRC model; illustrative numbers)."""
    return RadioTable([radio_cost(i, m) for i in intervals for m in models])


class _Server(Protocol):
    url: str

    @property
    def hub(self) -> Any: ...


# A page with both kinds of connection, a 100 ms interval timer that reports when it runs late,
# and every lifecycle event, each logged with its time.
_PAGE = """() => {
  window.log = []; const t0 = performance.now();
  const note = (what) => log.push([Math.round(performance.now() - t0), what]);
  addEventListener("pagehide", (e) => note("pagehide, persisted " + e.persisted));
  addEventListener("pageshow", (e) => note("pageshow, persisted " + e.persisted));
  const visibility = () => note("visibilitychange: " + document.visibilityState);
  document.addEventListener("visibilitychange", visibility);
  document.addEventListener("freeze", () => note("freeze"));
  document.addEventListener("resume", () => note("resume"));
  let last = performance.now();
  setInterval(() => { const now = performance.now();
    const gap = Math.round(now - last);
    if (gap > 500) note("setInterval(100 ms) ran " + gap + " ms after its last run");
    last = now; }, 100);
  const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws");
  ws.onopen = () => note("WebSocket open");
  ws.onerror = () => note("WebSocket error");
  ws.onclose = (e) => note("WebSocket close " + e.code + ", wasClean " + e.wasClean);
  const es = new EventSource("/sse"); let heartbeats = 0;
  es.onopen = () => note("EventSource open");
  es.onerror = () => note("EventSource error, readyState " + es.readyState);
  es.onmessage = (e) => {
    if (JSON.parse(e.data).type === "heartbeat") note("EventSource heartbeat " + ++heartbeats);
  };
}"""


@dataclass
class BackForward:
    """A page's log through the back/forward cache (ms since the page started), and what the
    server saw each second while the page was away; ``browser`` is ``None`` when no browser
    could be run here (``note`` says why)."""

    browser: str | None
    log: list[tuple[int, str]] = field(default_factory=list)
    server_view: list[str] = field(default_factory=list)
    note: str = ""

    def __repr__(self) -> str:
        if self.browser is None:
            return f"Not run: {self.note}"
        lines = [f"Chromium {self.browser}: the page's log"]
        lines += [f"  {ms:>6} ms  {what}" for ms, what in self.log]
        lines += ["the server, while the page was away:"]
        lines += [f"  {view}" for view in self.server_view]
        return "\n".join(lines)


def _connections(server: _Server) -> list[dict[str, Any]]:
    return list(server.hub.stats()["connection_list"])


def _server_view(server: _Server, earlier: set[str]) -> str:
    """The state of each connection the page opened (not those open before it)."""
    mine = sorted(
        (c["transport"], c["state"]) for c in _connections(server) if c["id"] not in earlier
    )
    return ", ".join(f"{transport} {state}" for transport, state in mine)


def _in_chromium(server: _Server, away_s: float) -> BackForward:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as playwright:
        # Playwright turns the back/forward cache off by default: turn it back on.
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[*args, "--disable-component-update", "--disable-sync"],
            ignore_default_args=["--disable-back-forward-cache"],
            headless=True,
        )
        try:
            earlier = {c["id"] for c in _connections(server)}
            page = browser.new_context().new_page()
            page.goto(f"{server.url}/")
            page.evaluate(_PAGE)
            time.sleep(1.5)
            page.goto(f"{server.url}/stats")  # away: any other page
            view = []
            for second in range(1, int(away_s) + 1):
                time.sleep(1)
                view.append(f"after {second} s away: {_server_view(server, earlier)}")
            page.evaluate("history.back()")  # a restore fires no load: no page.go_back()
            time.sleep(1.5)
            view.append(f"1.5 s after coming back: {_server_view(server, earlier)}")
            log = [(int(ms), str(what)) for ms, what in page.evaluate("window.log || []")]
            return BackForward(browser.version, log, view)
        finally:
            browser.close()


def back_forward(server: _Server, away_s: float = 3) -> BackForward:
    """Open this server's page in a headless Chromium with a WebSocket and an EventSource to the
    server, navigate away for ``away_s`` seconds and back (the back/forward cache on), and return
    the page's log and the server's view. Needs Playwright and a Chromium (the test extra);
    without them, says so and runs nothing."""
    try:
        # Playwright's sync API refuses to run on a thread with a running event loop (a kernel's).
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(_in_chromium, server, away_s).result(timeout=60)
    except Exception as exc:  # no Playwright, no Chromium: say so instead of failing the cell
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return BackForward(None, note=note)
