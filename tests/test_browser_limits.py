"""transport_demo.lab.browser_limits: the RRC model's arithmetic (notebook 03b, section 7), and the
back/forward cache run in a real Chromium, as the notebook shows it."""

from __future__ import annotations

import os

import pytest

from transport_demo import start_server
from transport_demo.lab import browser_limits
from transport_demo.lab.browser_limits import LTE, UMTS, radio_cost, radio_table

from .browser import CHROMIUM


def test_a_heartbeat_inside_the_tail_keeps_the_radio_out_of_idle() -> None:
    for model in (UMTS, LTE):
        cost = radio_cost(5, model)
        assert cost.high_fraction == 1.0
        # never idle, never promoted: the tail's power, all the time
        assert cost.joules_per_hour == pytest.approx(3600 * model.tails[0][2])


def test_a_heartbeat_after_the_tail_pays_promotion_and_the_whole_tail() -> None:
    cost = radio_cost(60, UMTS)
    per_beat = 2.0 * 0.46 + 5 * 0.8 + 12 * 0.46
    assert cost.joules_per_hour == pytest.approx(per_beat * 60)
    assert cost.high_fraction == pytest.approx((2 + 17) / 60)
    assert cost.mah_per_hour == pytest.approx(cost.joules_per_hour / 3.7 / 3.6)
    # 3G between its two tails: all of DCH, part of FACH, no promotion
    assert radio_cost(15, UMTS).joules_per_hour == pytest.approx((5 * 0.8 + 10 * 0.46) * 240)


def test_longer_intervals_cost_less_and_the_table_says_so() -> None:
    for model in (UMTS, LTE):
        costs = [radio_cost(i, model).joules_per_hour for i in (5, 15, 30, 60)]
        assert costs == sorted(costs, reverse=True)
    text = repr(radio_table([5, 60]))
    assert "     5 s   3G         100%" in text and "60 s   LTE" in text
    with pytest.raises(ValueError):
        radio_cost(0)


def test_without_a_browser_it_says_not_run() -> None:
    assert repr(browser_limits.BackForward(None, note="no Chromium")) == "Not run: no Chromium"


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="needs Debian's Chromium",
)
def test_back_forward_cache_in_chromium() -> None:
    """What 03b's answer says: restored from the cache; timers frozen; the WebSocket closed on
    return (1006), live on the server while away; the EventSource kept, its events held."""
    server = start_server(port=0, heartbeat_interval=1)
    try:
        result = browser_limits.back_forward(server, away_s=3)
    finally:
        server.stop()
    assert result.browser, result.note
    events = [what for _, what in result.log]
    assert "pagehide, persisted true" in events and "pageshow, persisted true" in events
    assert "freeze" in events and "resume" in events
    assert "WebSocket close 1006, wasClean false" in events
    late = [w for w in events if w.startswith("setInterval(100 ms) ran")]
    assert late and int(late[0].split()[3]) > 2500
    assert not any(w.startswith("EventSource error") for w in events)
    assert all("sse live, websocket live" in line for line in result.server_view[:3])
    assert "sse live, websocket disconnected" in result.server_view[-1]
    # the heartbeats sent while frozen arrive together, when the page resumes
    resumed = next(ms for ms, what in result.log if what == "resume")
    burst = [
        w for ms, w in result.log if w.startswith("EventSource heartbeat") and ms - resumed < 50
    ]
    assert len(burst) >= 2
