"""Helpers for the tests that run a real Jupyter server (JupyterLab with jupyter-server-proxy, or a
JupyterHub) and drive it in Chromium: free ports, waiting for a URL, a small notebook made in the
test, and running it in JupyterLab."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

# JupyterLab exposes its application object with --LabApp.expose_app_in_browser=True.
KERNEL_READY = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}"""


# Run code in the notebook page's kernel from the page itself; what it printed (or its error).
RUN_IN_KERNEL = """async (code) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute({ code, store_history: false });
    let out = "";
    future.onIOPub = (msg) => {
        const type = msg.header.msg_type;
        if (type === "stream") out += msg.content.text;
        if (type === "error") out += msg.content.ename + ": " + msg.content.evalue;
    };
    await future.done;
    return out;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_url(url: str, timeout: float = 60, **kwargs: object) -> httpx.Response:
    """GET ``url`` until it answers 200 (a server starting up), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.get(url, timeout=5, **kwargs)  # type: ignore[arg-type]
            if answer.status_code == 200:
                return answer
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
        time.sleep(0.3)


@contextlib.contextmanager
def running_jupyterlab(root: Path, token: str) -> Iterator[str]:
    """A real JupyterLab on 127.0.0.1 serving ``root`` until the block ends; yields its URL.

    Its runtime folder is ``root/.runtime`` (what ``list_running_servers()`` reads, so a kernel
    finds its own server), its log ``root/.lab.log``; a hub's ``JUPYTERHUB_*`` variables, if the
    tests run inside one, are not passed on.
    """
    port = free_port()
    command = [
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root"),
        *("--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0"),
        *(f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"),
        "--LabApp.expose_app_in_browser=True",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env |= {"JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    with (
        (root / ".lab.log").open("w") as log,
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env) as process,
    ):
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_url(f"{url}/api/status", headers={"Authorization": f"token {token}"})
            yield url
        finally:
            process.terminate()
            process.wait(20)


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code cells (nbformat 4), kernel python3."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for source in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))


# The test notebook: a server started in the kernel prints its browser_url and a live SSE widget
# shows its events. 127.0.0.1 only; the Origin list names no local page, so a page reaches this
# server only under the same-origin-as-Host rule (origins.py).
WIDGET_NOTEBOOK = [
    "from transport_demo import start_server\n"
    "server = start_server(port=0, heartbeat_interval=0.5, poll_timeout=1.0,\n"
    "                      allowed_origins=['http://classroom.invalid:8000'])\n"
    "print('BROWSER_URL=' + server.browser_url)",
    "server  # shows the link to client.html",
    "from transport_demo.widgets import SSEWidget\nw = SSEWidget(server.url)\nw.start()\nw",
    "w.wait_until(lambda w: w.connection_id is not None)\n"
    "server.hub.publish(w.connection_id, 'from the kernel')",
]


def run_notebook_in_lab(page: Page, url: str) -> str:
    """Open the notebook at ``url`` in JupyterLab, run all cells, wait until the widget shows a
    message; the printed ``browser_url``, also shown as a link."""
    page.goto(url)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)  # Run All before that runs nothing
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    printed = page.locator(".jp-OutputArea-output").filter(has_text="BROWSER_URL=")
    expect(printed.first).to_be_visible(timeout=90_000)
    # The widget's log shows the server's events as they arrive: heartbeats and the message.
    expect(page.locator('.td-entry[data-type="heartbeat"]').first).to_be_visible(timeout=30_000)
    expect(
        page.locator('.td-entry[data-type="message"]').filter(has_text="from the kernel")
    ).to_have_count(1, timeout=30_000)
    match = re.search(r"BROWSER_URL=(\S+)", printed.first.inner_text())
    assert match, printed.first.inner_text()
    link = page.locator(f'.jp-OutputArea-output a[href="{match.group(1)}"]')
    expect(link).to_have_text("open client.html")
    return match.group(1)


def open_notebook_link(page: Page, link: str) -> Page:
    """Click the notebook's link to client.html (it opens a new tab); the new page."""
    with page.context.expect_page() as opened:
        page.locator(f'.jp-OutputArea-output a[href="{link}"]').click()
    client = opened.value
    client.wait_for_load_state()
    return client


def wait_for_entries(
    page: Page, transport: str, kind: str, count: int, timeout: float = 10_000
) -> None:
    """Wait until client.html's ``transport`` log holds at least ``count`` entries of ``kind``
    (heartbeats keep coming, so an exact count could be overtaken)."""
    page.wait_for_function(
        """([transport, kind, count]) => document.querySelectorAll(
            `[data-transport="${transport}"] [data-role="log"] [data-type="${kind}"]`
        ).length >= count""",
        arg=[transport, kind, count],
        timeout=timeout,
    )
