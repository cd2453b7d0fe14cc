"""Scaler.Redis (issue 9): several servers joined through a real redis-server the tests start."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import gevent
import pytest
import trustme
from helpers import RedisServer, SteadyTraffic, on_each_worker, steady_traffic_between, subscribe

from clusterws_gevent.client import Client
from clusterws_gevent.protocol.redis_envelope import encode_envelope
from clusterws_gevent.testing import check_delivery_order, free_port, wait_until

TESTS_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not any(os.access(os.path.join(p, "redis-server"), os.X_OK)
                                        for p in os.environ.get("PATH", "").split(os.pathsep)),
                                reason="redis-server is not installed (.ci/run installs it)")


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def redis_servers(serve, redis):
    """``start(count=2, workers=2, url=None, *flags)``: ClusterWS servers joined by Redis."""

    def start(count: int = 2, workers: int = 2, url: str = "", *flags: str) -> List[Any]:
        return [serve("apps.pubsub:worker", "--workers", str(workers), "--scaler", "redis", "--redis-url",
                      url or redis.url, "--no-auto-ping", *flags, mode="scale", ready_count=workers)
                for _ in range(count)]

    return start


def urls(servers):
    return [f"ws://127.0.0.1:{server.port}/" for server in servers]


# -- delivery ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_200000_messages_across_servers_in_order_without_loss(redis_servers):
    servers = redis_servers()
    report = check_delivery_order(urls(servers), messages=200_000)
    assert report.ok, str(report)


@pytest.mark.parametrize("times", [100, pytest.param(1000, marks=pytest.mark.slow, id="1000")])
def test_a_subscribe_reply_means_the_route_is_live_across_servers(redis_servers, times):
    a_server, b_server = redis_servers(workers=1)
    with Client(urls([a_server])[0]) as a, Client(urls([b_server])[0]) as b:
        for i in range(times):
            name = f"live-{i}"
            got = []
            channel = a.subscribe(name)
            channel.watch(got.append)
            assert channel.wait_subscribed(5)
            b.subscribe(name).publish(i)  # b's subscribe is not awaited: b publishes at once
            wait_until(lambda got=got: got, 5, message=f"message {i}")
            assert got == [i]
            channel.unsubscribe()


def test_numsub_counts_workers_with_subscribers(redis_servers, redis):
    servers = redis_servers()
    clients = [client for server in servers for client in on_each_worker(server).values()]
    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        assert redis.numsub("cws:c:news") == 4
        assert redis.client().execute_command("PUBSUB", "NUMPAT") == 0
        for client in clients:
            client.send_text('["s","u","news"]')
        wait_until(lambda: redis.numsub("cws:c:news") == 0, 5, message="no worker subscribed")
    finally:
        for client in clients:
            client.close()


def test_a_local_publish_is_delivered_once_and_worker_messages_reach_every_other_worker(redis_servers):
    servers = redis_servers()
    workers = [client for server in servers for client in on_each_worker(server).values()]
    try:
        sender = workers[0]
        assert subscribe(sender, "self") == ["s", "s", {"self": True}]
        sender.emit("publish", {"channel": "self", "data": 1})
        sender.emit("publish", {"channel": "self", "data": 2})
        got: List[Any] = []
        while len(got) < 2:
            got += sender.recv_json()[2]["self"]
        assert got == [1, 2]
        sender.emit("to-workers", {"from": "a"})
        wait_until(lambda: sum(len(server.events("onWorkerMessage")) for server in servers) >= 3, 5)
        sender_pid = whoami_pid(sender)
        events = [event for server in servers for event in server.events("onWorkerMessage")]
        assert len(events) == 3 and sender_pid not in {event["pid"] for event in events}
    finally:
        for client in workers:
            client.close()


def whoami_pid(client):
    client.emit("whoami")
    return client.recv_event("whoami")


# -- hostile input on our channels, and the prefix ---------------------------------------------


def test_foreign_messages_on_our_channels_are_dropped_and_logged(redis_servers, redis):
    (server,) = redis_servers(count=1, workers=1)
    with Client(urls([server])[0]) as client:
        got = []
        channel = client.subscribe("news")
        channel.watch(got.append)
        assert channel.wait_subscribed(5)
        control = redis.client()
        for junk in (b"not json", b"\x01short", encode_envelope(b"12345678", [b"1"])[:-1] + b"xx", b""):
            control.publish("cws:c:news", junk)
        control.publish("news", encode_envelope(b"12345678", [b'"raw name"']))  # outside the prefix
        control.publish("#workersLine", b"{}")
        control.publish("cws:c:news", encode_envelope(b"12345678", [b'"valid"']))
        wait_until(lambda: got, 5, message="the valid message")
        assert got == ["valid"]
    log = server.wait_for_log("that is not ours")
    assert "Traceback" not in log


def test_bodies_that_do_not_decode_are_dropped_and_counted_without_reconnecting(redis_servers, redis):
    (server,) = redis_servers(count=1, workers=1)
    with Client(urls([server])[0]) as client:
        got, worker_messages = [], []
        channel = client.subscribe("news")
        channel.watch(got.append)
        assert channel.wait_subscribed(5)
        client.on("stats", worker_messages.append)
        control = redis.client()
        deep = b"[" * 100_000 + b"]" * 100_000  # RecursionError out of the subscriber's loop before
        control.publish("cws:w", encode_envelope(b"12345678", [deep]))
        control.publish("cws:c:news", encode_envelope(b"12345678", [b'"bad utf-8: \xff"', deep, b"{nope",
                                                                    b'"valid"']))
        wait_until(lambda: got, 5, message="the valid message")
        assert got == ["valid"]  # the other three of its envelope dropped
        client.send("stats", None)
        stats = wait_until(lambda: worker_messages, 5, message="the connector's counters")[0]
        assert stats["invalid"] == 3 and stats["reconnects"] == 0
    log = server.log()
    assert "Traceback" not in log and "RecursionError" not in log
    assert "dropped a worker message that is not JSON" in log


def test_the_default_prefix_holds_the_database_number_so_two_apps_never_meet(serve, redis):
    base = redis.url.rsplit("/", 1)[0]
    apps = [serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url", f"{base}/{db}",
                  "--no-auto-ping", mode="scale") for db in (1, 2)]
    with Client(urls(apps[:1])[0]) as one, Client(urls(apps[1:])[0]) as two:
        got, channels_of = {1: [], 2: []}, {}
        for db, client in ((1, one), (2, two)):
            channel = channels_of[db] = client.subscribe("news")
            channel.watch(got[db].append)
            assert channel.wait_subscribed(5)
        channels = redis.client().execute_command("PUBSUB", "CHANNELS", "*")
        assert {b"cws.db1:c:news", b"cws.db2:c:news"} <= set(channels)
        channels_of[1].publish("for db 1 only")
        wait_until(lambda: got[1], 5, message="db 1's own message")
        channels_of[2].publish("for db 2 only")
        wait_until(lambda: got[2], 5, message="db 2's own message")
        assert (got[1], got[2]) == (["for db 1 only"], ["for db 2 only"])


def test_a_server_started_while_redis_is_down_serves_and_subscribes_once_it_is_up(serve, tmp_path):
    redis = RedisServer(tmp_path)
    server = serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url", redis.url,
                   "--no-auto-ping", mode="scale")
    with Client(urls([server])[0]) as client:
        channel = client.subscribe("early")
        assert not channel.wait_subscribed(7)  # no confirmation: false
        server.wait_for_log("no confirmation of channel 'early'")
        redis.start()
        try:
            channel = client.subscribe("late")
            assert channel.wait_subscribed(8)
        finally:
            redis.kill()


# -- faults ---------------------------------------------------------------------------------------


@pytest.fixture
def steady(redis_servers):
    servers = redis_servers()
    with steady_traffic_between(*servers) as traffic:
        yield traffic, servers


def test_redis_killed_and_restarted_on_the_same_port(steady, redis):
    traffic, servers = steady
    redis.kill()
    gevent.sleep(0.5)  # the outage lasts half a second: this is the fault, not a synchronisation
    redis.start()
    assert traffic.flowing(2.0) <= 2.0
    servers[0].wait_for_log("were dropped while it was unreachable", timeout=5)  # the publishers' server


@pytest.mark.parametrize("kind", ["pubsub", "normal"])
def test_client_kill(steady, redis, kind):
    traffic, servers = steady
    redis.client().execute_command("CLIENT", "KILL", "TYPE", kind)
    assert traffic.flowing(2.0) <= 2.0
    if kind == "pubsub":  # a killed publisher connection is replaced when next used, before any PUBLISH
        assert all("subscriber connection lost" in server.log() for server in servers)


def test_client_pause(steady, redis):
    traffic, servers = steady
    redis.client().execute_command("CLIENT", "PAUSE", "3000")
    paused_until = time.monotonic() + 3.0
    wait_until(lambda: time.monotonic() >= paused_until, 5, message="the pause ends")
    assert traffic.flowing(2.0) <= 2.0


def test_a_half_open_link_is_found_by_the_canary(redis_servers, redis, tmp_path):
    relay_port = free_port()
    relay = subprocess.Popen([sys.executable, str(TESTS_DIR / "relay.py"), str(relay_port), str(redis.port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout.readline().strip() == "ready"
        a_server, b_server = redis_servers(2, 2, f"redis://127.0.0.1:{relay_port}/0")
        traffic = SteadyTraffic(urls([a_server])[0], urls([b_server]) * 2)
        try:
            traffic.flowing(5)
            relay.send_signal(signal.SIGUSR1)  # existing connections stop forwarding, both sockets stay open
            traffic.stalled(within=3.0)
            took = traffic.flowing(10.0)
            assert took <= 10.0
            assert any("liveness probe did not come back" in s.log() for s in (a_server, b_server))
        finally:
            traffic.stop()
        traffic.assert_never_duplicated_nor_reordered()
    finally:
        relay.kill()
        relay.wait(5)
        relay.stdout.close()


# -- TLS, Sentinel, the Emitter, monkey-patching -------------------------------------------------------


def test_rediss_with_a_test_ca(serve, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    tls_port = free_port()
    redis = RedisServer(tmp_path, "--tls-port", str(tls_port), "--tls-cert-file", str(cert_path), "--tls-key-file",
                        str(key_path), "--tls-ca-cert-file", str(ca_path), "--tls-auth-clients", "no").start()
    try:
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_path}"
        servers = [serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url", url,
                         "--no-auto-ping", mode="scale") for _ in range(2)]
        with Client(urls(servers)[0]) as a, Client(urls(servers)[1]) as b:
            got: List[Any] = []
            channel = a.subscribe("secure")
            channel.watch(got.append)
            assert channel.wait_subscribed(5)
            b.subscribe("secure").publish("over tls")
            wait_until(lambda: got, 5)
            assert got == ["over tls"]
        wrong = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(wrong))
        refused = serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url",
                        f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={wrong}", "--no-auto-ping", mode="scale",
                        ready_text="not every broker answered")
        assert "certificate verify failed" in refused.wait_for_log("certificate verify failed", timeout=10)
    finally:
        redis.kill()


@pytest.mark.slow
def test_sentinel_failover(serve, tmp_path):
    for name in ("m", "r", "s"):
        (tmp_path / name).mkdir()
    master = RedisServer(tmp_path / "m").start()
    replica = RedisServer(tmp_path / "r", "--replicaof", "127.0.0.1", str(master.port)).start()
    sentinel_port = free_port()
    conf = tmp_path / "s" / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path / 's'}\n"
                    f"sentinel monitor cws 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds cws 1000\nsentinel failover-timeout cws 5000\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up", 10)
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/0/cws"
        wait_until(lambda: sentinel_answers(sentinel_port), 10, message="sentinel up")
        servers = [serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url", url,
                         "--no-auto-ping", mode="scale") for _ in range(2)]
        traffic = SteadyTraffic(urls(servers)[0], urls(servers)[1:])
        try:
            traffic.flowing(5)
            import redis as redis_py

            redis_py.Redis(port=sentinel_port).execute_command("SENTINEL", "FAILOVER", "cws")
            wait_until(lambda: replica.client().info("replication").get("role") == "master", 10,
                       message="the replica is the master")
            assert traffic.flowing(10.0) <= 10.0
        finally:
            traffic.stop()
        traffic.assert_never_duplicated_nor_reordered()
    finally:
        sentinel.kill()
        sentinel.wait(5)
        replica.kill()
        master.kill()


def sentinel_answers(port: int) -> bool:
    import redis as redis_py

    try:
        return bool(redis_py.Redis(port=port, socket_timeout=1).execute_command("SENTINEL", "MASTERS"))
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_the_emitter_publishes_from_a_plain_python_process(redis_servers, redis):
    servers = redis_servers(workers=1)
    clients = [Client(url) for url in urls(servers)]
    try:
        got: List[Any] = []
        for client in clients:
            channel = client.subscribe("from-cron")
            channel.watch(got.append)
            assert channel.wait_subscribed(5)
        script = ("import sys; from clusterws_gevent import Emitter\n"
                  "with Emitter(redis=sys.argv[1]) as e:\n"
                  "    print(e.publish('from-cron', {'job': 'done'}), e.publish_to_workers('hello'))\n"
                  "import gevent.monkey; assert not gevent.monkey.is_module_patched('socket')\n")
        result = subprocess.run([sys.executable, "-c", script, redis.url], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["2", "2"]
        wait_until(lambda: len(got) == 2, 5)
        assert got == [{"job": "done"}] * 2
        for server in servers:
            server.wait_event("onWorkerMessage", message="hello")
    finally:
        for client in clients:
            client.close()


def test_scaler_redis_refuses_to_start_without_monkey_patching(redis):
    result = subprocess.run([sys.executable, str(TESTS_DIR / "apps" / "run_redis_unpatched.py"), redis.url,
                             str(free_port())], capture_output=True, text=True, timeout=30, cwd=str(TESTS_DIR))
    assert result.returncode == 1
    assert "Scaler.Redis needs gevent's monkey-patching" in result.stderr + result.stdout


def test_scaler_redis_with_broker_options_is_an_error():
    from clusterws_gevent import ClusterWS, OptionError, Scaler

    with pytest.raises(OptionError, match="scale_options.scaler"):
        ClusterWS(worker=lambda w: None, scale_options={"scaler": Scaler.Redis, "redis": "redis://x/0",
                                                         "default": {"brokers": 2}})


def test_the_dashboard_shows_the_redis_links_and_the_numbers_metrics_shows(redis_servers, redis):
    pytest.importorskip("prometheus_client")
    token = "a-dashboard-token-for-the-tests"
    (server,) = redis_servers(1, 2, "", "--admin", "--admin-token", token, "--metrics")
    clients = list(on_each_worker(server).values())

    def data():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/clusterws/admin/data", headers={"Authorization": f"Bearer {token}"})
        body = json.loads(connection.getresponse().read())
        connection.close()
        return body

    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        view = wait_until(lambda: (lambda v: v if v.get("totals", {}).get("subscriptions") == 2 else None)(data()),
                          10, interval=0.2, message="the dashboard counts both workers' subscribers")
        assert view["server"] == {"mode": "Scale", "scaler": "Redis"}
        assert view["channels"]["by_subscribers"] == [["news", 2]]
        links = view["links"]
        assert len(links) == 4 and all(link["up"] for link in links), links
        assert {link["process"] for link in links} == {"worker 1", "worker 2"}
        assert any(link["name"] == f"redis {redis.url} publisher (master)" for link in links), links
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
        connection.close()
        assert "clusterws_connections 2.0" in metrics and "clusterws_subscriptions 2.0" in metrics
        assert view["totals"]["connections"] == 2
    finally:
        for client in clients:
            client.close()
