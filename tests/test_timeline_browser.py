"""The packet lens's timeline in real JupyterLab in Chromium: the marks drawn, a summary on hover,
the bytes on click (a message that is HTML stays text), the kind filter, the download."""

from __future__ import annotations

from pathlib import Path

import pytest

from .jupyter import KERNEL_READY, running_jupyterlab, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

HOSTILE = "<img src=x onerror=window.__owned=1>"

CELLS = [
    "from transport_demo import start_server\n"
    "from transport_demo.lab import ws_wire\n"
    "from transport_demo.lab.network import network\n"
    "server = start_server(port=0, heartbeat_interval=5)",
    'with network(server, capture="lens.pcapng") as net:\n'
    "    with ws_wire.RawWebSocket(net.url) as lens:\n"
    f"        lens.handshake(); lens.send_text({HOSTILE!r}); lens.read_opcode(0x1)\n"
    '        lens.send_close(1000, "bye"); lens.read_opcode(0x8)\n'
    "    net.wait_idle()",
    "from transport_demo.widgets.timeline import TimelineWidget\nTimelineWidget(net)",
]


def test_the_timeline_renders_in_jupyterlab(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from .browser import launch

    write_notebook(tmp_path / "lens.ipynb", CELLS)
    token = "transport-demo-test"
    with running_jupyterlab(tmp_path, token) as url, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.goto(f"{url}/lab/tree/lens.ipynb?token={token}")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=90_000)
            page.wait_for_function(KERNEL_READY, timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            timeline = page.locator(".tdt")
            expect(timeline).to_be_visible(timeout=90_000)
            marks = timeline.locator(".tdt-mark")
            expect(marks.first).to_be_visible(timeout=30_000)
            total = marks.count()
            assert total >= 10  # SYN, SYN-ACK, ACK, GET, 101, frames, close, FINs
            rows = timeline.locator(".tdt-row")
            assert rows.count() == 2  # one connection, up and down
            up = timeline.locator('.tdt-row[data-dir="up"] .tdt-mark[data-kind="websocket"]')
            titles = [up.nth(i).get_attribute("title") or "" for i in range(up.count())]
            assert titles and all("masked" in title for title in titles), titles
            message = next(i for i, t in enumerate(titles) if "text FIN masked" in t)
            up.nth(message).click()
            detail = timeline.locator(".tdt-detail")
            expect(detail).to_contain_text(f"unmasked: {HOSTILE}")
            assert timeline.locator("img").count() == 0
            assert page.evaluate("window.__owned === undefined")
            # the kind filter: without TCP, fewer marks
            timeline.locator('.tdt-kind[data-kind="tcp"] input').uncheck()
            expect(marks).not_to_have_count(total)
            assert timeline.locator('.tdt-mark[data-kind="tcp"]').count() == 0
            with page.expect_download(timeout=30_000) as download:
                timeline.locator(".tdt-download").click()
            saved = download.value.path()
            assert download.value.suggested_filename == "lens.pcapng"
            assert Path(saved).read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
        finally:
            browser.close()
