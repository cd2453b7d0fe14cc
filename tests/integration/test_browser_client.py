"""The browser client the server ships (issue 10), in Debian's headless Chromium driven by
npm playwright-core (tests/browser/drive.js); nothing downloads a browser."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from clusterws_gevent.client import Client
from clusterws_gevent.testing import free_port, wait_until

BROWSER_DIR = Path(__file__).resolve().parent.parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and os.access(CHROMIUM, os.X_OK) and (BROWSER_DIR / "node_modules").is_dir()),
    reason="needs node, Debian's chromium and `npm ci --prefix tests/browser` (.ci/run installs them)")

FLASK = ("--app", "apps.flask_site:app")


@contextlib.contextmanager
def driven(scenario: str, url: str) -> Iterator[subprocess.Popen]:
    """drive.js running ``scenario`` on the page at ``url``, talked to through its stdin and
    stdout (one JSON step a line); killed if still running when the block ends."""
    driver = subprocess.Popen(["node", str(BROWSER_DIR / "drive.js"), scenario, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(BROWSER_DIR))
    try:
        yield driver
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(5)
        for stream in (driver.stdin, driver.stdout, driver.stderr):
            stream.close()


def drive(scenario: str, port: int, timeout: float = 30) -> Dict[str, Any]:
    """Run a scenario of drive.js on the server's /client page; its steps by name."""
    result = subprocess.run(["node", str(BROWSER_DIR / "drive.js"), scenario, f"http://127.0.0.1:{port}/client"],
                            capture_output=True, text=True, timeout=timeout, cwd=str(BROWSER_DIR))
    assert result.returncode == 0, result.stderr + result.stdout
    return {step["step"]: step.get("data") for step in map(json.loads, result.stdout.splitlines())}


def test_emit_round_trip(serve):
    server = serve("apps.basic:worker", *FLASK)
    assert drive("emit", server.port)["echo"] == {"hello": "browser"}


def test_subscribe_and_publish(serve):
    server = serve("apps.pubsub:worker", *FLASK)
    assert drive("pubsub", server.port)["message"] == {"message": {"from": "browser"}, "state": "subscribed"}


def test_a_declined_subscription_is_canceled(serve):
    server = serve("apps.pubsub:worker", *FLASK)
    assert drive("canceled", server.port)["canceled"] == "canceled"


def test_it_reconnects_and_resubscribes_after_a_server_restart(serve):
    port = free_port()
    first = serve("apps.pubsub:worker", *FLASK, "--no-auto-ping", port=port)
    with driven("reconnect", f"http://127.0.0.1:{port}/client") as driver:
        assert json.loads(driver.stdout.readline())["step"] == "subscribed"
        first.stop()
        serve("apps.pubsub:worker", *FLASK, "--no-auto-ping", port=port)
        driver.stdin.write("restarted\n")
        driver.stdin.flush()
        step = json.loads(driver.stdout.readline())
        assert step["step"] == "resubscribed"
        events: List[Any] = step["data"]
        assert events[0] == ["subscribed"] and ["close", 1001] in events and events[-1] == ["subscribed"]
        with Client(f"ws://127.0.0.1:{port}/") as publisher:
            publisher.subscribe("room").publish("after the restart")
            step = json.loads(driver.stdout.readline())
        assert step == {"step": "received", "data": [["message", "after the restart"]]}
        assert driver.wait(10) == 0, driver.stderr.read()


def test_the_ping_watchdog_closes_with_4001(serve):
    server = serve("apps.pubsub:worker", *FLASK, "--no-auto-ping")
    closed = drive("watchdog", server.port)["closed"]
    assert closed["code"] == 4001 and closed["after"] < 2000  # the promised 200 ms ping, 500 ms late


def test_refused_upgrades_get_no_tight_retry_loop(serve):
    server = serve("apps.basic:worker", *FLASK, env={"TEST_VERIFY": "reject"})
    closes = drive("refused", server.port)["closes"]
    assert 2 <= len(closes) <= 5 and set(closes) == {1006}  # backoff 0.5, 1, 2 s (jittered), not a loop
    assert server.log().count("by verifyConnection") <= 5


def test_the_es_module_and_the_declarations_are_served(serve):
    server = serve("apps.basic:worker", *FLASK)
    assert drive("module", server.port)["module"] == {"same": True, "declares": True}


def get(port: int, path: str, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_client_is_served_with_an_etag_and_its_path_can_change(serve):
    server = serve("apps.basic:worker", *FLASK)
    status, headers, body = get(server.port, "/clusterws.js")
    assert status == 200 and headers["Content-Type"].startswith("application/javascript")
    assert b"function ClusterWS(options)" in body
    assert get(server.port, "/clusterws.js", {"If-None-Match": headers["ETag"]})[0] == 304
    moved = serve("apps.basic:worker", *FLASK, "--client-path", "/assets/cws.js")
    assert get(moved.port, "/assets/cws.js")[0] == 200
    assert get(moved.port, "/clusterws.js")[0] == 404  # Flask's: the server no longer answers it


def test_the_browser_client_recovers_what_it_missed_across_a_worker_kill(serve_cluster):
    """Scale mode, history on the channel: the page's worker is SIGKILLed while another worker's
    client publishes 500 messages/s; the page reconnects (to a worker the master starts or the
    other one), recovers, and ends with every message once, in order."""
    import gevent

    channels = json.dumps({"namespaces": {"feed": {"history_size": 2000, "history_ttl": 60}}})
    server = serve_cluster("apps.pubsub:worker", *FLASK, "--no-auto-ping", "--channel-options", channels,
                           "--restart-on-fail")
    with driven("recover", f"http://127.0.0.1:{server.port}/client") as driver:
        step = json.loads(driver.stdout.readline())
        assert step["step"] == "pid"
        page_pid = step["data"]
        publisher = None
        for _ in range(40):  # a publisher on the other worker: the kill must not take it
            candidate = Client(f"ws://127.0.0.1:{server.port}/")
            pids = []
            candidate.on("whoami", pids.append)
            candidate.send("whoami", None)
            wait_until(lambda pids=pids: pids, 5, message="whoami")
            if pids[0] != page_pid:
                publisher = candidate
                break
            candidate.close()
        assert publisher is not None
        sent = 0

        def publish(count):
            nonlocal sent
            for _ in range(count):
                publisher.send("publish", {"channel": "feed:live", "data": {"p": 0, "i": sent}})
                sent += 1
                gevent.sleep(0.002)  # pacing: 500 a second

        publish(500)
        os.kill(page_pid, signal.SIGKILL)
        publish(1000)
        publisher.close()
        driver.stdin.write(f"published {sent}\n")
        driver.stdin.flush()
        got = json.loads(driver.stdout.readline())
        assert got["step"] == "got", got
        result = got["data"]
        assert driver.wait(10) == 0, driver.stderr.read()
    assert result["closes"], "the page's connection was cut"
    assert result["recovered"] == [True]
    assert (result["received"], result["gaps"], result["duplicates"], result["next"]) == (sent, 0, 0, sent)


class CountingRelay:
    """A TCP relay on a free loopback port to ``target``, in threads, counting the bytes the
    server sends (what travels on the wire, compressed or not). Stopped with ``close()``."""

    def __init__(self, target: int) -> None:
        import socket
        import threading

        self.target = target
        self.from_server = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: List[Any] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: Any, target: Any, count: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    target.close()
                    return
                if count:
                    with self._lock:
                        self.from_server += len(data)
                target.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def test_the_browser_negotiates_compression_and_gets_publishes_compressed(serve):
    server = serve("apps.pubsub:worker", *FLASK, "--compression", "--no-auto-ping")
    relay = CountingRelay(server.port)
    try:
        with driven("compressed", f"http://127.0.0.1:{relay.port}/client") as driver:
            assert json.loads(driver.stdout.readline())["step"] == "subscribed"
            before = relay.from_server
            words = "the quick brown fox jumps over the lazy dog and comes back again "
            with Client(f"ws://127.0.0.1:{server.port}/") as publisher:
                for i in range(20):
                    publisher.send("publish", {"channel": "digest", "data": {"i": i, "text": (words * 40)[:2000]}})
                step = json.loads(driver.stdout.readline())
            assert step["step"] == "received", step
            assert driver.wait(15) == 0, driver.stderr.read()
    finally:
        relay.close()
    got = step["data"]
    assert got["count"] == 20 and got["intact"]
    assert "permessage-deflate" in got["extensions"]
    on_the_wire = relay.from_server - before
    assert on_the_wire < 20 * 2000 / 4, f"{on_the_wire} bytes on the wire for 40,000 bytes of messages"
