"""gunicorn with clusterws_gevent.gunicorn.Worker (issue 20): a real gunicorn, its sockets,
signals and settings; workers joined by Redis or by brokers a server hook starts."""
from __future__ import annotations

import http.client
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
from helpers import ConnectionChurn, RedisServer, alive, connect, on_each_worker, subscribe, whoami

from clusterws_gevent.testing import ServerProcess, free_port, wait_until

pytest.importorskip("gunicorn")

TESTS_DIR = Path(__file__).resolve().parent.parent
GUNICORN = [sys.executable, "-m", "gunicorn"]
BROKERS_CONF = str(TESTS_DIR / "apps" / "gunicorn_brokers_conf.py")


@pytest.fixture
def gunicorn(tmp_path):
    """``start(*flags, workers=2, env=None)``: gunicorn serving apps.gunicorn_app:app on a free port."""
    started = []

    def start(*flags: str, workers: int = 2, env: Optional[dict] = None) -> ServerProcess:
        port = free_port()
        server = ServerProcess(["-k", "clusterws_gevent.gunicorn.Worker", "-w", str(workers), "-b",
                                f"127.0.0.1:{port}", "--no-control-socket", "--graceful-timeout", "5", *flags,
                                "apps.gunicorn_app:app"],
                               str(tmp_path / f"gunicorn-{len(started)}.log"), cwd=str(TESTS_DIR), port=port,
                               env=env, ready_text="Booting worker", ready_count=workers, command=GUNICORN)
        server.port = port  # type: ignore[attr-defined]
        started.append(server)
        server.start()
        wait_until(lambda: len({_pid(port) for _ in range(20)}) == workers, 15, interval=0.1,
                   message="every worker answers")
        return server

    yield start
    for server in started:
        server.stop()


def _pid(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read().decode()
    except OSError:
        return ""
    finally:
        connection.close()


@pytest.fixture
def redis(tmp_path):
    if not any(os.access(os.path.join(p, "redis-server"), os.X_OK) for p in os.environ["PATH"].split(os.pathsep)):
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def publish_across(server) -> None:
    """A publish on one worker reaches a subscriber on the other."""
    clients = list(on_each_worker(server).values())
    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        clients[0].send_text('["p","news","across"]')
        for client in clients:
            assert client.recv_json() == ["p", None, {"news": ["across"]}]
    finally:
        for client in clients:
            client.close()


def test_the_flask_page_and_the_websocket_on_one_port(gunicorn):
    server = gunicorn(workers=1)
    assert _pid(server.port).startswith("flask in ")
    client = connect(server)
    try:
        assert str(whoami(client)) in _pid(server.port)
    finally:
        client.close()
    assert "clusterws_gevent.gunicorn.Worker" in server.log()


def test_pubsub_across_two_workers_through_redis(gunicorn, redis):
    server = gunicorn(env={"TEST_REDIS_URL": redis.url})
    publish_across(server)


def test_pubsub_across_two_workers_through_brokers_a_hook_started(gunicorn):
    server = gunicorn("-c", BROKERS_CONF)
    assert ">>> Broker on:" in server.log()
    publish_across(server)


def test_without_a_scaler_several_workers_say_a_publish_stays_in_its_worker(gunicorn):
    server = gunicorn()
    server.wait_for_log("a publish reaches the sockets of the worker it was made in only", 10)


def test_hup_replaces_the_workers_without_refusing_a_connection(gunicorn):
    server = gunicorn("-c", BROKERS_CONF)
    before = {_pid(server.port) for _ in range(20)}
    with ConnectionChurn(server, lambda client: whoami(client)) as churn:
        wait_until(lambda: len(churn.successes) >= 20, 10, message="connections before the reload")
        server.signal(signal.SIGHUP)
        wait_until(lambda: not ({_pid(server.port) for _ in range(10)} & before)
                   and len({_pid(server.port) for _ in range(20)}) == 2, 30, interval=0.2,
                   message="every worker replaced")
        count = len(churn.successes)
        wait_until(lambda: len(churn.successes) >= count + 20, 10, message="connections after the reload")
    assert churn.failures == []
    publish_across(server)  # the new workers are joined by the same brokers


def test_term_closes_every_socket_with_1001_within_the_graceful_timeout(gunicorn):
    server = gunicorn("-c", BROKERS_CONF)
    clients = list(on_each_worker(server).values())
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for client in clients:
        assert client.recv_close()[0] == 1001
        client.close()
    assert server.wait(10) == 0
    assert time.monotonic() - started < 5 + 2  # --graceful-timeout 5
    broker_pids = [int(line.rsplit("PID: ", 1)[1]) for line in server.log().splitlines() if "Broker on:" in line]
    assert broker_pids and wait_until(lambda: not any(map(alive, broker_pids)), 10, message="brokers stopped")


def test_max_requests_restarts_a_worker_between_two_messages(gunicorn):
    server = gunicorn("--max-requests", "3", workers=1)
    client = connect(server)
    first = whoami(client)
    for _ in range(3):
        _pid(server.port)
    assert client.recv_close()[0] == 1001  # the socket is closed with its close frame, not cut
    client.close()
    wait_until(lambda: _pid(server.port) and str(first) not in _pid(server.port), 15, interval=0.1,
               message="a new worker serves")
