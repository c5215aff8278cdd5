"""The security lab's instruments (transport_demo/lab/security.py, notebook 05b) show what they
claim, against a real server: the rebound page refused by Host, and let in when the Host check is
off; Vary: Origin on every CORS answer; a leaked id taking a connection over; ids short in the
log and in /stats; and, in Debian's Chromium, which WebSockets an https page may open."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from transport_demo import RunningServer, start_server
from transport_demo.lab import security
from transport_demo.server import logs


@pytest.fixture
def unguarded() -> Iterator[RunningServer]:
    running = start_server(port=0, allowed_hosts=("*",))
    yield running
    running.stop()


def test_the_rebound_page_gets_421_and_the_servers_own_page_200(server: RunningServer) -> None:
    for method, path in (("GET", "/stats"), ("POST", "/poll")):
        shown = security.rebinding(server.url, method=method, path=path)
        assert shown.ours.status == 200 and shown.ours.error is None
        assert (shown.rebound.status, shown.rebound.error) == (421, "host_not_allowed")
        assert shown.rebound.connection_id is None
        # the page's own origin on a POST, none on a same-origin GET (Fetch)
        assert shown.rebound.origin == (None if method == "GET" else shown.rebound.page)
        text = repr(shown)
        assert f"Host: {security.REBOUND_HOST}:{server.port}" in text
        assert "→ 421 host_not_allowed" in text


def test_without_the_host_check_the_rebound_post_opens_a_connection(
    unguarded: RunningServer,
) -> None:
    rebound = security.rebinding(unguarded.url, method="POST", path="/poll").rebound
    assert rebound.status == 200 and rebound.connection_id
    assert rebound.origin == f"http://{security.REBOUND_HOST}:{unguarded.port}"


def test_every_cors_answer_varies_on_origin(server: RunningServer) -> None:
    none, allowed, foreign = security.cors_answers(server.url)
    assert (none.status, none.allow_origin, none.vary) == (200, None, "Origin")
    assert (allowed.status, allowed.allow_origin, allowed.vary) == (
        200,
        "http://localhost:8888",
        "Origin",
    )
    assert (foreign.status, foreign.allow_origin, foreign.vary) == (403, None, "Origin")


def test_a_leaked_id_takes_the_connection_over_and_stays_short_in_logs_and_stats(
    server: RunningServer,
) -> None:
    victim = security.watch_socket(server.url, name="victim")
    cid = victim.connection_id
    server.hub.publish(cid, "your grade: A")
    victim.wait_for(2)
    thief = security.watch_socket(server.url, name="thief", connection_id=cid)
    try:
        thief.wait_for(2)
        victim.wait_for(3)
        assert thief.received[0]["resumed"] is True
        assert [e.get("message") for e in thief.received[1:]] == ["your grade: A"]
        assert victim.closed == "4000 superseded by a resumed connection"
        server.hub.publish(cid, "meet at 5")
        thief.wait_for(3)
        assert thief.received[-1]["message"] == "meet at 5"
        assert "closed: 4000" in repr(security.side_by_side(victim, thief))
        logged = [line for line in logs.recent.lines if cid[:8] in line]
        assert any(f"connection_id={cid[:8]}…&last_seq=0" in line for line in logged)
        assert not any(cid in line for line in logs.recent.lines)
        stats = httpx.get(f"{server.url}/stats").json()
        assert cid[:8] in [row["id"] for row in stats["connection_list"]]
        assert cid not in str(stats)
    finally:
        thief.close()
        victim.close()


def test_mixed_content_says_so_when_no_browser_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_browser(page: str, urls: list[str]) -> security.MixedContent:
        raise ModuleNotFoundError("No module named 'playwright'")

    monkeypatch.setattr(security, "_in_chromium", no_browser)
    shown = security.mixed_content()
    assert shown.browser is None and repr(shown).startswith("Not run: ModuleNotFoundError")


@pytest.mark.browser
@pytest.mark.slow
def test_an_https_page_cannot_open_ws_to_a_host_that_is_not_loopback() -> None:
    shown = security.mixed_content()
    assert shown.browser, shown.note
    assert shown.secure_context is True
    outcomes = dict(shown.outcomes)
    for url, outcome in outcomes.items():
        if security.INSECURE_HOST in url:  # ws: and http: (turned into ws:) alike
            assert outcome.startswith("the constructor threw SecurityError"), (url, outcome)
        else:  # ws://127.0.0.1 (loopback: potentially trustworthy) and wss:
            assert outcome == "open", (url, outcome)
    assert len(outcomes) == 4
