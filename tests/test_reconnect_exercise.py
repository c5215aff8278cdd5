"""The reconnect exercise in JavaScript (notebook 04, section 7; issue 22): the drill endpoints it
uses, the check run by a real Chromium against a real server on a plain page, the solution passing,
each classic wrong answer failing with its reason in the report, the widget's own page code, and
the kernel's verdict.

The wrong answers are the solution with one thing changed, so that each fails for that one reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from transport_demo import RunningServer
from transport_demo.lab.exercises.reconnect import check_reconnect
from transport_demo.widgets.reconnect import ReconnectExercise, starter_code

from .browser import CHROMIUM, launch

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "notebooks" / "solutions" / "reconnect.js").read_text()
HARNESS = (ROOT / "transport_demo" / "widgets" / "js" / "reconnect_check.js").read_text()
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)",
)


def changed(old: str, new: str) -> str:
    """The solution with ``old`` (which must be there, once) replaced by ``new``."""
    assert SOLUTION.count(old) == 1, old
    return SOLUTION.replace(old, new)


# -- the drill endpoints ------------------------------------------------------------------------


def ws_url(server: RunningServer, query: str = "") -> str:
    return server.url.replace("http", "ws", 1) + "/ws" + query


def test_publish_and_cut_one_connection(server: RunningServer, http: httpx.Client) -> None:
    with connect(ws_url(server)) as mine, connect(ws_url(server)) as other:
        cid = json.loads(mine.recv(5))["connection_id"]
        json.loads(other.recv(5))
        answer = http.post("/lessons/publish", json={"connection_id": cid, "text": "one"})
        assert answer.json() == {"seq": 1}
        assert json.loads(mine.recv(5))["message"] == "one"
        assert http.post("/lessons/cut", json={"connection_id": cid}).json() == {"cut": True}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                mine.recv(5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert json.loads(other.recv(5))["type"] == "heartbeat"  # the other socket stays
        http.post("/lessons/publish", json={"connection_id": cid, "text": "while away"})
    # Nothing attached now: nothing to cut; the connection is still there to resume.
    assert http.post("/lessons/cut", json={"connection_id": cid}).json() == {"cut": False}
    with connect(ws_url(server, f"?connection_id={cid}&last_seq=1")) as back:
        assert json.loads(back.recv(5))["resumed"] is True
        assert json.loads(back.recv(5))["message"] == "while away"


def test_drill_refusals(http: httpx.Client) -> None:
    unknown = http.post("/lessons/publish", json={"connection_id": "nope", "text": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_connection"
    assert http.post("/lessons/publish", json={"text": "x"}).status_code == 422
    assert http.post("/lessons/cut", json={"connection_id": "nope"}).json() == {"cut": False}


def test_a_page_on_another_origin_may_send_authorization(http: httpx.Client) -> None:
    """JupyterLab's page is another origin: the ticket exchange's preflight allows the header."""
    preflight = http.options(
        "/lessons/ticket",
        headers={
            "Origin": "http://localhost:8888",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_classroom_mode_serves_no_drill(make_server: Callable[..., RunningServer]) -> None:
    room = make_server(classroom=True, host="127.0.0.1")
    with httpx.Client(base_url=room.url, timeout=10) as client:
        assert client.post("/lessons/cut", json={"connection_id": "x"}).status_code == 404


# -- the check in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def drill_page() -> Iterator[tuple[Any, str]]:
    """A real server (resume grace long enough for any backoff) and a Chromium page on it, with
    the check loaded: the page is the server's own (client.html), so no CORS in the way."""
    from playwright.sync_api import sync_playwright

    from transport_demo import start_server

    server = start_server(port=0, heartbeat_interval=1, poll_timeout=1, resume_grace=30)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.add_script_tag(content=HARNESS)
        yield page, server.url
        browser.close()
    server.stop()


def run_check(drill_page: tuple[Any, str], source: str) -> dict[str, Any]:
    page, url = drill_page
    result: dict[str, Any] = page.evaluate(
        "([base, source]) => runReconnectCheck(base, source)", [url, source]
    )
    return result


@pytest.mark.browser
@needs_chromium
def test_the_solution_passes(
    drill_page: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_check(drill_page, SOLUTION)
    assert result["passed"] is True, result["problems"]
    ws, es = result["websocket"], result["eventsource"]
    assert ws["published"] == 14 and ws["lost"] == ws["doubled"] == [[], [], []]
    assert ws["out_of_order"] == [0, 0, 0]
    assert [len(delays) for delays in ws["delays_ms"]] == [3, 3, 3]  # three cuts, three reconnects
    assert all(125 <= d <= 250 for delays in ws["delays_ms"] for d in delays)  # nextDelay(0)
    assert es["heard"] == es["streams"] == es["tickets"] == 3 and len(es["delays_ms"]) == 2
    assert check_reconnect(result) is True
    printed = capsys.readouterr().out
    assert "pass!" in printed and "WebSocket client 3: lost 0, doubled 0, out of order 0" in printed


WRONG = {
    "no jitter": (
        changed("return ceiling / 2 + Math.random() * (ceiling / 2);", "return ceiling;"),
        "no jitter: after each cut all 3 clients waited the same time (250, 250, 250 ms)",
    ),
    "no resume point": (
        changed("new WebSocket(url + resume)", "new WebSocket(url)"),
        "clients 1, 2, 3: lost 12 of 14 messages (seq 3–14)",
    ),
    "resume from the first seq": (
        changed("&last_seq=${lastSeq}", "&last_seq=0"),
        "clients 1, 2, 3: got seq 1–10 twice",
    ),
    "no backoff": (
        changed("setTimeout(open, nextDelay(attempt));", "open();"),
        "reconnected at once after close 1012",
    ),
    "4000 not final": (
        changed("new Set([1000, 1008, 1009, 4000])", "new Set([1000, 1008, 1009])"),
        "reconnected after close 4000",
    ),
    "CLOSED ignored": (
        changed("setTimeout(() => listen(url, getTicket, attempt + 1), nextDelay(attempt));", ""),
        "nothing opened a new EventSource",
    ),
    "the same ticket again": (
        changed("await getTicket();\n", "await (listen.ticket ||= getTicket());\n"),
        "reused a ticket that was already used",
    ),
    "reopens while CONNECTING": (
        changed("    if (source.readyState !== EventSource.CLOSED) return;\n", ""),
        "while the previous one was still CONNECTING",
    ),
    "a syntax error": (SOLUTION + "\nfunction (", "the code does not run: SyntaxError"),
    "no connect, a listen that opens nothing": (
        "async function listen(url, getTicket) {}",
        "part 1 is not written yet: function connect(url)",
    ),
}


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("name", list(WRONG))
def test_a_wrong_answer_fails_with_its_reason(
    drill_page: tuple[Any, str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, reason = WRONG[name]
    result = run_check(drill_page, source)
    assert result["passed"] is False
    assert any(reason in problem for problem in result["problems"]), result["problems"]
    assert check_reconnect(result) is False
    assert "not yet" in capsys.readouterr().out
    if name == "no resume point":  # the report says why, not only what
        assert any("without connection_id" in p for p in result["problems"])
        assert result["websocket"]["doubled"] == [[], [], []]
    if name == "resume from the first seq":
        assert any("resumed from last_seq=0 after receiving" in p for p in result["problems"])
        assert result["websocket"]["lost"] == [[], [], []]


@pytest.mark.browser
@pytest.mark.slow  # waits out the 8 s a client gets to come back
@needs_chromium
def test_the_starter_code_fails(drill_page: tuple[Any, str]) -> None:
    result = run_check(drill_page, starter_code())
    assert result["passed"] is False
    problems = "\n".join(result["problems"])
    assert "did not reconnect within 8 s after the server's close 1012 (cut 1 of 3)" in problems
    assert "nothing opened a new EventSource" in problems


# -- the widget: its page code on a plain page, and the kernel side ------------------------------

FAKE_MODEL = """async ([esm, url, source]) => {
    const values = { url, source, run_count: 0, done_count: 0, status: "idle", result: {} };
    const handlers = {};
    const model = {
        get: (name) => values[name],
        set(name, value) {
            const changes = typeof name === "string" ? { [name]: value } : name;
            Object.assign(values, changes);
            for (const key of Object.keys(changes)) {
                for (const handler of handlers["change:" + key] || []) handler();
            }
        },
        on(names, handler) {
            for (const name of names.split(" ")) (handlers[name] ||= []).push(handler);
        },
        off() {},
        save_changes() {},
    };
    const blob = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
    const widget = (await import(blob)).default;
    widget.initialize({ model });
    const el = document.createElement("div");
    document.body.append(el);
    widget.render({ model, el });
    window.fakeModel = values;
}"""


@pytest.mark.browser
@needs_chromium
def test_the_widget_runs_the_check_and_shows_the_report(drill_page: tuple[Any, str]) -> None:
    from playwright.sync_api import expect

    page, url = drill_page
    exercise = ReconnectExercise(url)
    assert exercise.source == starter_code() and exercise.passed is None
    page.evaluate(FAKE_MODEL, [exercise._esm, url, "// nothing yet"])
    code = page.locator(".tdr-code")
    assert code.input_value() == "// nothing yet"
    code.fill(SOLUTION.replace("Run the check", "<b>not HTML</b>"))
    page.get_by_role("button", name="Run the check").click()
    expect(page.locator(".tdr-verdict")).to_have_text("✓ pass", timeout=30_000)
    lines = page.locator(".tdr-lines li")
    expect(lines).to_have_count(4)  # three clients, one EventSource
    expect(lines.nth(3)).to_contain_text("EventSource: 3 opened, 3 tickets, 3 said hello")
    state = page.evaluate("() => window.fakeModel")
    assert state["status"] == "done" and state["result"]["passed"] is True
    assert "<b>not HTML</b>" in state["source"]  # the text area's code is what ran


def test_the_widget_loads_a_file_and_asks_the_page_to_run() -> None:
    exercise = ReconnectExercise("http://127.0.0.1:8004")
    exercise.load(ROOT / "notebooks" / "solutions" / "reconnect.js")
    assert exercise.source == SOLUTION
    exercise.run()
    exercise.run()
    assert exercise.run_count == 2
    exercise.result = {"passed": False, "problems": ["x"]}
    assert exercise.passed is False


def test_the_kernel_verdict_before_any_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_reconnect(ReconnectExercise("http://127.0.0.1:8004")) is False
    printed = capsys.readouterr().out
    assert "not yet" in printed and "Run the check" in printed
    assert check_reconnect({"passed": False, "problems": []}) is False


@pytest.mark.browser
@needs_chromium
def test_the_check_runs_from_a_page_on_another_origin(
    drill_page: tuple[Any, str], make_server: Callable[..., RunningServer]
) -> None:
    """As in JupyterLab, whose page is another site: CORS (the ticket's Authorization header), no
    cookies, EventSource across origins."""
    page, url = drill_page
    other = make_server()
    context = page.context.browser.new_context()
    try:
        elsewhere = context.new_page()
        elsewhere.goto(f"http://localhost:{other.port}/")
        elsewhere.add_script_tag(content=HARNESS)
        result = elsewhere.evaluate(
            "([base, source]) => runReconnectCheck(base, source)", [url, SOLUTION]
        )
    finally:
        context.close()
    assert result["passed"] is True, result["problems"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
@needs_chromium
def test_the_exercise_in_jupyterlab(drill_page: tuple[Any, str], tmp_path: Path) -> None:
    """The whole loop as a class sees it: the notebook's server in the kernel, the widget in
    JupyterLab, the solution loaded from the kernel and run by the page, then a wrong answer
    typed into the box and run with the button; the kernel prints each verdict. (The module's
    browser: Playwright's sync API runs one at a time.)"""
    from playwright.sync_api import expect

    from .jupyter import KERNEL_READY, RUN_IN_KERNEL, running_jupyterlab, write_notebook

    shutil.copytree(ROOT / "notebooks" / "solutions", tmp_path / "solutions")
    write_notebook(
        tmp_path / "exercise.ipynb",
        [
            "from transport_demo import start_server\n"
            "server = start_server(port=0, heartbeat_interval=1, resume_grace=30)",
            "from transport_demo.widgets.reconnect import ReconnectExercise\n"
            "from transport_demo.lab.exercises.reconnect import check_reconnect\n"
            "exercise = ReconnectExercise(server)\n"
            "exercise",
            'exercise.load("solutions/reconnect.js"); exercise.run()',
        ],
    )
    token = "transport-demo-test"
    context = drill_page[0].context.browser.new_context(viewport={"width": 1400, "height": 2000})
    with running_jupyterlab(tmp_path, token) as lab:
        page = context.new_page()
        page.goto(f"{lab}/lab/tree/exercise.ipynb?token={token}")
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
        page.wait_for_function(KERNEL_READY, timeout=60_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        verdict = page.locator(".tdr-verdict")
        expect(verdict).not_to_have_text("", timeout=90_000)  # the page's run is over
        assert verdict.inner_text() == "✓ pass", page.locator(".tdr-lines").inner_text()
        printed = page.evaluate(RUN_IN_KERNEL, "check_reconnect(exercise)")
        assert "pass!" in printed and "WebSocket client 1: lost 0, doubled 0" in printed, printed
        if importlib.util.find_spec("jupyter_server_proxy"):  # the page reaches it by the proxy,
            # which closes the page's socket without the server's code: 1005, and a note says so
            assert "note: the server's close codes did not reach this page" in printed, printed

        no_jitter = changed(
            "return ceiling / 2 + Math.random() * (ceiling / 2);", "return ceiling;"
        )
        page.locator(".tdr-code").fill(no_jitter)
        page.get_by_role("button", name="Run the check").click()
        expect(verdict).to_have_text("✗ not yet", timeout=60_000)
        expect(page.locator(".tdr-problem").first).to_contain_text("no jitter")
        printed = page.evaluate(
            RUN_IN_KERNEL, "check_reconnect(exercise); print('return ceiling;' in exercise.source)"
        )
        assert "not yet" in printed and "no jitter" in printed and "True" in printed, printed
        context.close()


def test_a_login_without_the_cookie(http: httpx.Client) -> None:
    """The check logs in with ``"cookie": false``: on a page the server itself serves, a session
    cookie would let the stream in without a ticket, and the exercise would test nothing."""
    answer = http.post("/lessons/login", json={"user": "ada", "cookie": False})
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    assert "set-cookie" in http.post("/lessons/login", json={"user": "ada"}).headers
