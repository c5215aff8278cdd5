"""Ids are redacted in every log line, and redacting never breaks a formatter (issue 20, 4 and 5).

uvicorn's access formatter unpacks ``record.args`` as a 5-tuple, so the filter must redact inside
the arguments rather than replace them; the command-line tests run ``python -m transport_demo``
(one process, then ``--workers 2`` on a real Redis) and read what it printed.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter
from websockets.sync.client import connect as ws_connect

from tests.waiting import until
from transport_demo.lab.local_redis import start_redis
from transport_demo.server.logs import RedactIds, redact

CID = "0123abcd-4567-89ab-cdef-0123456789ab"
SHORT = "0123abcd…"
# uvicorn's own formats (uvicorn.config.LOGGING_CONFIG), so the tests follow them if they change.
ACCESS_FMT: str = LOGGING_CONFIG["formatters"]["access"]["fmt"]
DEFAULT_FMT: str = LOGGING_CONFIG["formatters"]["default"]["fmt"]
# Anything uuid-shaped: the tests assert that no full id reached the output, whichever it was.
FULL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def access_record(path: str, status: int = 200) -> logging.LogRecord:
    """A record as uvicorn's httptools protocol logs a request on ``uvicorn.access``."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:50000", "GET", path, "1.1", status),
        None,
    )


def filtered(record: logging.LogRecord) -> logging.LogRecord:
    assert RedactIds().filter(record) is True  # it never drops a record
    return record


@pytest.mark.parametrize("use_colors", [False, True])
def test_uvicorns_access_formatter_formats_a_redacted_access_record(use_colors: bool) -> None:
    record = filtered(access_record(f"/ws?connection_id={CID}&last_seq=3", 101))
    line = AccessFormatter(ACCESS_FMT, use_colors=use_colors).format(record)
    assert f"/ws?connection_id={SHORT}&last_seq=3" in line
    assert CID not in line
    assert "101" in line
    # the record keeps its shape: the formatter's 5-tuple, the status code still an int
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert record.args[4] == 101


@pytest.mark.parametrize("use_colors", [False, True])
def test_uvicorns_default_formatter_formats_a_redacted_record(use_colors: bool) -> None:
    """The WebSocket handshake line goes to ``uvicorn.error``, formatted by DefaultFormatter."""
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:50000", f"/ws?connection_id={CID}&last_seq=0"),
        None,
    )
    record.color_message = '%s - "WebSocket %s" \x1b[32m[accepted]\x1b[0m'
    line = DefaultFormatter(DEFAULT_FMT, use_colors=use_colors).format(filtered(record))
    assert f'"WebSocket /ws?connection_id={SHORT}&last_seq=0"' in line
    assert CID not in line


def test_the_access_line_through_a_configured_uvicorn_access_logger() -> None:
    """The whole path: a logger with the filter and a handler with AccessFormatter, no
    ``--- Logging error ---`` (a handler reports its formatter's exceptions via handleError)."""
    errors: list[logging.LogRecord] = []
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

        def handleError(self, record: logging.LogRecord) -> None:
            errors.append(record)

    handler = Collect()
    handler.setFormatter(AccessFormatter(ACCESS_FMT, use_colors=False))
    logger = logging.Logger("test_logs.access")  # not registered: no global logging state changes
    logger.addFilter(RedactIds())
    logger.addHandler(handler)
    path = f"/sse?connection_id={CID}&last_seq=0"
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", 200)
    assert not errors
    assert lines == [
        f'INFO:     127.0.0.1:50000 - "GET /sse?connection_id={SHORT}&last_seq=0 HTTP/1.1" 200 OK'
    ]


def test_mapping_arguments_keep_their_keys_and_types() -> None:
    record = logging.LogRecord(
        "transport_demo",
        logging.INFO,
        __file__,
        1,
        "%(cid)s at seq %(seq)d",
        ({"cid": CID, "seq": 7},),
        None,
    )
    assert logging.Formatter("%(message)s").format(filtered(record)) == f"{SHORT} at seq 7"
    assert record.args == {"cid": SHORT, "seq": 7}


def test_a_message_without_arguments_is_redacted() -> None:
    record = logging.LogRecord(
        "transport_demo", logging.INFO, __file__, 1, f"lost {CID}", None, None
    )
    assert filtered(record).getMessage() == f"lost {SHORT}"


def test_non_string_arguments_that_show_an_id_are_redacted() -> None:
    """A ``uuid.UUID`` (or an exception naming an id) prints the full id through ``%s``."""
    record = logging.LogRecord(
        "transport_demo",
        logging.INFO,
        __file__,
        1,
        "%s: %s (%d)",
        (uuid.UUID(CID), KeyError(CID), 3),
        None,
    )
    assert filtered(record).getMessage() == f"{SHORT}: '{SHORT}' (3)"


def test_a_record_without_ids_is_left_alone() -> None:
    record = access_record("/stats")
    args = record.args
    assert filtered(record).args is args
    assert redact("no id here") == "no id here"


# --- the command line, in processes of its own ---------------------------------------------------


class Cli:
    """``python -m transport_demo ARGS``, its stdout and stderr in files (read while it runs)."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.out, self.err = directory / "stdout.txt", directory / "stderr.txt"
        command = [sys.executable, "-m", "transport_demo", "--port", "0", *args]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        self.url = ""

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> Cli:
        """Until the port is printed ("open http://127.0.0.1:PORT/") and /stats answers."""

        def up() -> bool:
            assert self.process.poll() is None, self.stdout() + self.stderr()
            match = re.search(r"open (http://127\.0\.0\.1:\d+)/", self.stdout())
            if match is None:
                return False
            self.url = match.group(1)
            try:
                return httpx.get(self.url + "/stats", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        until(up, timeout=timeout, what="the command line server answers")
        return self

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl+C (SIGINT) and wait for the process to end; its exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def cli_dir(tmp_path: Path) -> Path:
    return tmp_path


def new_sse_connection(http: httpx.Client, url: str) -> str:
    """Open ``GET /sse``, return the id from its ``connected`` event, and close the stream."""
    with http.stream("GET", url + "/sse") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                event: dict[str, Any] = json.loads(line[5:])
                assert event["type"] == "connected", event
                connection_id: str = event["connection_id"]
                return connection_id
    raise AssertionError("the SSE stream ended before its connected event")


def sse_resume(http: httpx.Client, url: str, cid: str) -> None:
    """``GET /sse?connection_id=…&last_seq=0``: read its first event, then hang up."""
    with http.stream("GET", f"{url}/sse?connection_id={cid}&last_seq=0") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                return


def ws_resume(ws_url: str, cid: str) -> None:
    """``/ws?connection_id=…&last_seq=0``: read one message, then close."""
    with ws_connect(f"{ws_url}/ws?connection_id={cid}&last_seq=0", open_timeout=5) as ws:
        ws.recv(timeout=5)


def assert_clean_and_redacted(cli: Cli, ids: list[str]) -> None:
    out, err = cli.stdout(), cli.stderr()
    both = out + err
    assert "Logging error" not in both, err
    assert "Traceback" not in both, err
    for cid in ids:
        assert cid not in both
    assert not FULL_UUID.search(both), FULL_UUID.findall(both)


def test_the_command_lines_log_survives_resumes_with_ids_redacted(cli_dir: Path) -> None:
    """A real SSE resume (a 200 access line, formatted by AccessFormatter on stdout), a resume of
    an unknown id, and a WebSocket resume (DefaultFormatter on stderr): every line is there,
    redacted, and nothing is reported as a logging error."""
    cli = Cli(cli_dir)
    try:
        cli.wait_ready()
        with httpx.Client(timeout=5) as http:
            cid = new_sse_connection(http, cli.url)
            sse_resume(http, cli.url, cid)
            unknown = str(uuid.uuid4())
            sse_resume(http, cli.url, unknown)
        ws_resume(cli.ws_url, cid)
        resumed = f"/sse?connection_id={cid[:8]}…&last_seq=0 HTTP/1.1"
        until(
            lambda: resumed in cli.stdout() and f"{unknown[:8]}…" in cli.stdout(),
            timeout=5,
            what="the SSE resumes' access lines",
        )
        until(
            lambda: f'"WebSocket /ws?connection_id={cid[:8]}…&last_seq=0"' in cli.stderr(),
            timeout=5,
            what="the WebSocket resume's line",
        )
        assert cli.interrupt() in (0, 130)
    finally:
        cli.kill()
    assert re.search(rf'"GET {re.escape(resumed)}" 200', cli.stdout()), cli.stdout()
    assert_clean_and_redacted(cli, [cid, unknown])


@pytest.fixture
def redis_url() -> Iterator[str]:
    with start_redis() as store:
        yield store.url


@pytest.mark.slow
def test_every_worker_redacts_ids(cli_dir: Path, redis_url: str) -> None:
    """``--workers 2``: each worker is a fresh (spawned) process with uvicorn's logging set up
    anew; resumes served by either worker are logged redacted."""
    cli = Cli(cli_dir, "--workers", "2", "--redis", redis_url, "--heartbeat-interval", "0.5")
    ids: list[str] = []
    try:
        cli.wait_ready(timeout=30)
        with httpx.Client(timeout=5) as http:
            until(
                lambda: len(http.get(cli.url + "/stats").json()["processes"]) >= 2,
                timeout=20,
                what="both workers registered in Redis",
            )
            cid = new_sse_connection(http, cli.url)
        ids.append(cid)
        # A keep-alive connection stays with one worker: /stats names it, then the SSE resume
        # on the same connection is logged by that same worker. Until both have logged one.
        resumed_by: set[str] = set()
        for _ in range(100):
            with httpx.Client(timeout=5) as http:
                worker = http.get(cli.url + "/stats").json()["process"]["id"]
                sse_resume(http, cli.url, cid)
            resumed_by.add(worker)
            if len(resumed_by) == 2:
                break
        assert len(resumed_by) == 2, "one worker served every request"
        for _ in range(4):
            ws_resume(cli.ws_url, cid)
            unknown = str(uuid.uuid4())
            ids.append(unknown)
            with httpx.Client(timeout=5) as http:
                sse_resume(http, cli.url, unknown)
        until(
            lambda: (
                cli.stdout().count(f"/sse?connection_id={cid[:8]}…") >= 2
                and cli.stderr().count(f"/ws?connection_id={cid[:8]}…") >= 4
            ),
            timeout=5,
            what="the resumes' log lines",
        )
        assert cli.interrupt() == 0
    finally:
        cli.kill()
    assert_clean_and_redacted(cli, ids)
