"""A real JupyterHub on 127.0.0.1, as a university runs one: its configurable-http-proxy (from npm,
installed by scripts/setup.sh), the dummy authenticator, a local-process spawner, two users.

For each user, in Chromium: log in, run a small notebook in their own JupyterLab (a server started
in the kernel, its ``browser_url``, a live SSE widget showing events), then open client.html
through ``/user/NAME/proxy/PORT/`` and see all three transports work live. The two users' Jupyter
servers are isolated: one user's login does not open the other's server or proxy.

(With a local-process spawner both users' kernels share this machine's loopback, so isolation of
the transport-demo servers themselves is the container's job on a real hub; what is tested here is
the hub's: each user reaches only their own server.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright

from .browser import CHROMIUM, launch
from .jupyter import (
    WIDGET_NOTEBOOK,
    free_port,
    open_notebook_link,
    run_notebook_in_lab,
    wait_for_entries,
    wait_for_url,
    write_notebook,
)
from .test_client_page import ECHO, IDLE_EVENT, TRANSPORTS, entries, send, start

ROOT = Path(__file__).resolve().parent.parent
USERS = ("ada", "grace")


def proxy_command() -> str | None:
    local = ROOT / ".venv/chp/node_modules/.bin/configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        (not CHROMIUM.exists() or proxy_command() is None) and not os.environ.get("CI"),
        reason="needs Debian's chromium and configurable-http-proxy (scripts/setup.sh)",
    ),
]

CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {secret!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root", "--LabApp.expose_app_in_browser=True"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {{"JUPYTER_PLATFORM_DIRS": "1"}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chp = proxy_command()
    assert chp, "configurable-http-proxy is missing: run scripts/setup.sh"
    state = tmp_path_factory.mktemp("hub")
    homes = state / "home"
    for user in USERS:
        (homes / user).mkdir(parents=True)
        write_notebook(homes / user / "widget.ipynb", WIDGET_NOTEBOOK)
    port = free_port()
    config = CONFIG.format(
        port=port,
        hub_port=free_port(),
        api_port=free_port(),
        chp=chp,
        pid_file=str(state / "proxy.pid"),
        db=state / "jupyterhub.sqlite",
        secret=str(state / "cookie_secret"),
        homes=str(homes),
        python=sys.executable,
    )
    (state / "jupyterhub_config.py").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    # The venv's bin first: the hub and its spawner find the venv's Python programs.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (state / "hub.log").open("w")
    command = [sys.executable, "-m", "jupyterhub", "-f", str(state / "jupyterhub_config.py")]
    with subprocess.Popen(command, cwd=state, stdout=log, stderr=subprocess.STDOUT, env=env) as p:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_url(f"{url}/hub/api/", timeout=90)
            yield url
        finally:
            p.terminate()  # the hub stops its proxy and the users' servers on the way out
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            log.close()


def log_in(context: BrowserContext, hub: str, user: str) -> None:
    page = context.new_page()
    page.goto(f"{hub}/hub/login")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill("any password")  # the dummy authenticator
    page.locator("#login_submit").click()
    page.wait_for_url(f"{hub}/user/{user}/lab**", timeout=120_000)  # spawned, JupyterLab open
    page.close()


def test_two_users_on_a_real_jupyterhub(hub: str) -> None:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        links = {}
        try:
            for user in USERS:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                log_in(context, hub, user)
                page = context.new_page()
                link = run_notebook_in_lab(page, f"{hub}/user/{user}/lab/tree/widget.ipynb")
                # JUPYTERHUB_SERVICE_PREFIX gave the kernel its user's proxy path.
                assert link.startswith(f"/user/{user}/proxy/") and link.endswith("/"), link
                links[user] = link
                notebook = page
                page = open_notebook_link(notebook, link)  # the link the notebook shows
                assert page.url == hub + link
                # The link to give a whole class: the hub sends each student to their own server.
                page.goto(f"{hub}/hub/user-redirect/{link.split('/', 3)[3]}")
                page.wait_for_url(hub + link)
                for transport in TRANSPORTS:
                    start(page, transport)
                    expect(entries(page, transport, IDLE_EVENT[transport]).first).to_be_visible(
                        timeout=10_000
                    )
                    send(page, transport, f"{user} via {transport}")
                    expect(
                        entries(page, transport, ECHO[transport]).filter(has_text=user)
                    ).to_have_count(1, timeout=5000)
                    if transport != "long-polling":  # heartbeats keep coming, one by one
                        wait_for_entries(page, transport, "heartbeat", 3)
                context.close()
            assert links[USERS[0]] != links[USERS[1]]
            # Isolation: one user's login opens neither the other's JupyterLab nor their proxy.
            first, second = USERS
            context = browser.new_context()
            log_in(context, hub, first)
            for path in (f"/user/{second}/lab", links[second]):
                answer = context.request.get(hub + path)  # redirects followed: the hub says no
                assert answer.status == 403, (path, answer.status, answer.url)
                assert "transport-demo" not in answer.text()
            own = context.request.get(hub + links[first])
            assert own.status == 200 and "transport-demo" in own.text()
            context.close()
        finally:
            browser.close()
    assert httpx.get(f"{hub}/hub/api/").status_code == 200
