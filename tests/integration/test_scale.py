"""Mode.Scale: master, brokers and workers as real processes (issue 4)."""
import os
import re
import signal
import socket
import time

import pytest
from helpers import ConnectionChurn, alive, connect, on_each_worker, subscribe, worker_pids

from clusterws_gevent.testing import check_delivery_order, wait_until


def test_start_up_lines_and_connections_spread_over_workers(serve_cluster):
    server = serve_cluster(workers=2, brokers=2)
    log = server.log()
    master = server.process.pid
    assert f">>> Master on: {server.port}, PID: {master} (Mode.Scale, 2 worker(s), 2 broker(s))" in log
    for port in server.broker_ports:
        assert re.search(rf">>> Broker on: {port}, PID: \d+", log)
    assert re.search(r">>> Worker: 1, PID: \d+", log) and re.search(r">>> Worker: 2, PID: \d+", log)
    clients = on_each_worker(server)
    assert set(clients) == set(worker_pids(server))
    for client in clients.values():
        client.close()


def test_publishes_cross_workers_once_and_worker_messages_reach_the_others(serve_cluster):
    server = serve_cluster(workers=2, brokers=2)
    (a_pid, a), (b_pid, b) = on_each_worker(server).items()
    with a, b:
        for client in (a, b):
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        a.emit("publish", {"channel": "news", "data": "from a"})  # wss.publish on worker a
        b.send_text('["p","news","from b"]')  # a client publish on worker b
        got = {client: [] for client in (a, b)}
        for client in (a, b):
            while len(got[client]) < 2:
                got[client] += client.recv_json()[2]["news"]
            assert sorted(got[client]) == ["from a", "from b"]  # each once: no echo from the broker
        a.emit("to-workers", {"hello": "workers"})
        (event,) = server.wait_event("onWorkerMessage")
        assert event["pid"] == b_pid and event["message"] == {"hello": "workers"}
        b.emit("echo", "settle")
        b.recv_event("echo")
        assert not server.events("onWorkerMessage", pid=a_pid)


def test_a_worker_gets_only_the_channels_it_has_subscribers_for(serve_cluster):
    server = serve_cluster(workers=2, brokers=2)
    (_, a), (_, b) = on_each_worker(server).items()
    with a, b:
        subscribe(a, "only-a")
        subscribe(b, "only-b")
        for i in range(50):
            b.emit("publish", {"channel": "only-b", "data": i})
            b.emit("publish", {"channel": "nobody", "data": i})
        received = []
        while len(received) < 50:
            received += b.recv_json()[2]["only-b"]
        a.emit("stats")
        assert sum(link["received"] for link in a.recv_event("stats")["links"]) == 0
        b.emit("publish", {"channel": "only-a", "data": "for a"})
        assert a.recv_json() == ["p", None, {"only-a": ["for a"]}]
        a.emit("stats")
        assert sum(link["received"] for link in a.recv_event("stats")["links"]) == 1


@pytest.mark.parametrize("times", [100, pytest.param(1000, marks=pytest.mark.slow, id="1000")])
def test_subscribe_reply_means_the_route_is_live_every_time(serve_cluster, times):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", workers=2, brokers=2)
    started = time.monotonic()
    (_, subscriber), (_, publisher) = on_each_worker(server).items()
    with subscriber, publisher:
        for i in range(times):
            channel = f"race-{i}"
            assert subscribe(subscriber, channel) == ["s", "s", {channel: True}]
            publisher.emit("publish", {"channel": channel, "data": i})
            assert subscriber.recv_json() == ["p", None, {channel: [i]}], f"iteration {i}"
            subscriber.send_text(f'["s","u","{channel}"]')
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("messages", [20_000, pytest.param(200_000, marks=pytest.mark.slow, id="200000")])
def test_messages_across_workers_and_brokers_in_order_without_loss(serve_cluster, messages):
    server = serve_cluster(workers=2, brokers=2)
    report = check_delivery_order([f"ws://127.0.0.1:{server.port}/"], messages=messages, subscribers=4,
                                  publishers=4, channels=6)
    assert report.ok, str(report)


def test_a_killed_worker_is_restarted_and_the_others_keep_serving(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", workers=2, brokers=1)
    (victim_pid, victim), (other_pid, other) = on_each_worker(server).items()
    with victim, other:
        os.kill(victim_pid, signal.SIGKILL)
        assert victim.at_eof()
        for i in range(20):
            other.emit("echo", i)
            assert other.recv_event("echo") == i
        log = server.wait_for_log("(restarted)")
        assert re.search(rf"worker \d \(PID {victim_pid}\) died: killed by SIGKILL \(perhaps out of memory\?\)", log)
        assert "restarting worker" in log
    new_pid = int(re.search(r">>> Worker: \d+, PID: (\d+) \(restarted\)", server.log()).group(1))
    clients = on_each_worker(server)
    assert set(clients) == {other_pid, new_pid}
    for client in clients.values():
        client.close()


def test_a_killed_broker_is_restarted_and_cross_worker_publish_is_back_within_2s(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", workers=2, brokers=1)
    broker_pid = int(re.search(r">>> Broker on: \d+, PID: (\d+)", server.log()).group(1))
    (_, a), (_, b) = on_each_worker(server).items()
    with a, b:
        subscribe(a, "news")
        os.kill(broker_pid, signal.SIGKILL)
        killed = time.monotonic()
        back = None
        a.sock.settimeout(0.1)
        while back is None and time.monotonic() - killed < 5:
            b.emit("publish", {"channel": "news", "data": "ping"})
            try:
                a.recv_json()
                back = time.monotonic() - killed
            except (TimeoutError, socket.timeout):
                pass
        assert back is not None and back < 2.0, f"cross-worker publish back after {back}"
    log = server.wait_for_log("were dropped while it was down")  # loss during the fault, counted per link
    assert re.search(r"broker \d+ \(PID \d+\) died: killed by SIGKILL", log)
    assert re.search(r"broker link \d+ lost", log)
    assert re.search(r"broker link \d+: back; \d+ message\(s\) were dropped while it was down", log)


def test_children_exit_by_themselves_when_the_master_dies(serve_cluster):
    server = serve_cluster(workers=2, brokers=1)
    children = worker_pids(server) + [int(p) for p in re.findall(r">>> Broker on: \d+, PID: (\d+)", server.log())]
    os.kill(server.process.pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=10, message="children gone")


def test_a_crashing_worker_is_restarted_with_a_growing_delay(serve_cluster, tmp_path):
    flag = tmp_path / "crash"
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", workers=1, brokers=1,
                           env={"TEST_CRASH_FLAG": str(flag)})
    flag.write_text("crash on start")
    os.kill(worker_pids(server)[0], signal.SIGKILL)
    log = server.wait_for_log("restarting worker 1 in 0.4s", timeout=15)
    delays = [float(d) for d in re.findall(r"restarting worker 1 in ([\d.]+)s", log)]
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert "exit code 3 (the worker function failed)" in log
    flag.unlink()
    server.wait_for_log("(restarted)", timeout=15)
    with connect(server) as client:
        client.emit("echo", "back")
        assert client.recv_event("echo") == "back"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signals_close_every_websocket_with_1001_and_every_process_exits(serve_cluster, sig):
    server = serve_cluster(workers=2, brokers=2)
    children = worker_pids(server) + [int(p) for p in re.findall(r">>> Broker on: \d+, PID: (\d+)", server.log())]
    clients = list(on_each_worker(server).values())
    server.signal(sig)
    for client in clients:
        assert client.recv_close()[0] == 1001
        client.send_close(1001)
        client.close()
    assert server.wait(15) == 0
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=5, message="children gone")


def test_sighup_replaces_every_worker_without_refusing_a_connection(serve_cluster):
    server = serve_cluster(workers=2, brokers=1)
    old = set(worker_pids(server))

    def echo(client):
        # every connection must be accepted and upgraded; one that lands on a worker being
        # replaced may then be closed with 1001 (the client reconnects), never reset or refused
        client.emit("echo", "x")
        opcode, payload = client.recv()
        if opcode == 8:
            assert payload[:2] == b"\x03\xe9", payload  # 1001
        else:
            assert payload == b'["e","echo","x"]', payload

    with ConnectionChurn(server, echo) as churn:
        wait_until(lambda: len(churn.successes) > 20)
        server.signal(signal.SIGHUP)
        server.wait_for_log("replaced PID", count=2, timeout=30)
        count = len(churn.successes)
        wait_until(lambda: len(churn.successes) > count + 20)
    assert churn.failures == []
    new = {int(p) for p in re.findall(r">>> Worker: \d+, PID: (\d+) \(replaced", server.log())}
    assert len(new) == 2 and not new & old
    wait_until(lambda: not any(alive(pid) for pid in old), timeout=10)


def test_ttin_adds_a_worker_and_ttou_removes_one(serve_cluster):
    server = serve_cluster(workers=1, brokers=1)
    server.signal(signal.SIGTTIN)
    log = server.wait_for_log(">>> Worker: 2, PID")  # logged once the new worker serves
    new_pid = int(re.search(r">>> Worker: 2, PID: (\d+) \(added\)", log).group(1))
    for client in on_each_worker(server, count=2).values():
        client.close()
    server.signal(signal.SIGTTOU)
    server.wait_for_log("SIGTTOU: worker 2 stopping")
    wait_until(lambda: not alive(new_pid), timeout=10)
    server.signal(signal.SIGTTOU)
    server.wait_for_log("SIGTTOU: keeping the last worker")


def test_a_worker_whose_event_loop_hangs_is_killed_and_replaced(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", "--worker-timeout", "1.5", workers=2, brokers=1)
    (hung_pid, hung), (other_pid, other) = on_each_worker(server).items()
    with hung, other:
        hung.emit("hang")
        log = server.wait_for_log("(restarted)", timeout=15)
        assert re.search(rf"worker \d \(PID {hung_pid}\) gave no sign of life for \d+s", log)
        assert re.search(rf"worker \d \(PID {hung_pid}\) died: killed for giving no sign of life", log)
        other.emit("echo", "unaffected")
        assert other.recv_event("echo") == "unaffected"
    assert not alive(hung_pid)
