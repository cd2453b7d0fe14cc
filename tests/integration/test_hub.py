"""The horizontal scaler hub (issue 9): servers joined across machines, as separate masters on
loopback ports. Server A runs the hub (master_options); B and C list it (scalers_urls)."""
from __future__ import annotations

import os
import re
import signal
import socket
import time
from typing import Any, List

import pytest
import trustme
from helpers import on_each_worker, whoami, worker_pids

from clusterws_gevent.client import Client
from clusterws_gevent.protocol import broker_wire as wire
from clusterws_gevent.testing import check_delivery_order, free_port, wait_until

KEY = "the shared secret"


@pytest.fixture
def hub_servers(serve):
    """``start(*per_server_flags, hub_flags=(), key=KEY)``: A runs the hub; the others join it."""
    hub_port = free_port()

    def start(others: int = 2, hub_flags=(), join_flags=(), key: str = KEY, scheme: str = "ws",
              host: str = "127.0.0.1") -> List[Any]:
        common = ["--workers", "2", "--brokers", "2", "--horizontal-key", key, "--no-auto-ping"]
        a = serve("apps.pubsub:worker", *common, "--master-port", str(hub_port), *hub_flags, mode="scale",
                  ready_count=2)
        a.hub_port = hub_port
        joined = [serve("apps.pubsub:worker", *common, "--scalers-urls", f"{scheme}://{host}:{hub_port}",
                        *join_flags, mode="scale", ready_count=2) for _ in range(others)]
        return [a, *joined]

    return start


def urls(servers):
    return [f"ws://127.0.0.1:{server.port}/" for server in servers]


def wait_linked(servers) -> None:
    """The servers' brokers joined the hub: a publish crosses from the second server to the last."""
    wait_until(lambda: deliver_across(servers[1], servers[-1]), 10, interval=0.2, message="servers linked")


def deliver_across(source, target, channel: str = "probe") -> bool:
    """A publish on ``source`` reaches a subscriber on ``target`` (within a second)."""
    with Client(urls([target])[0]) as sub, Client(urls([source])[0]) as pub:
        got: List[Any] = []
        subscription = sub.subscribe(channel)
        subscription.watch(got.append)
        if not subscription.wait_subscribed(5):
            return False
        pub.subscribe(channel).publish("hello")
        try:
            wait_until(lambda: got, 1.0)
        except TimeoutError:
            return False
        return got == ["hello"]


def test_three_servers_deliver_once_in_order(hub_servers):
    servers = hub_servers()
    wait_linked(servers)
    report = check_delivery_order(urls(servers), messages=20_000, subscribers=6, publishers=3)
    assert report.ok, str(report)


@pytest.mark.slow
def test_three_servers_deliver_100000_messages_once_in_order(hub_servers):
    servers = hub_servers()
    wait_linked(servers)
    report = check_delivery_order(urls(servers), messages=100_000, subscribers=6, publishers=3)
    assert report.ok, str(report)


def test_a_subscribe_reply_means_the_route_is_live_across_servers(hub_servers):
    a, b, c = hub_servers()
    wait_linked([a, b, c])
    with Client(urls([b])[0]) as sub, Client(urls([c])[0]) as pub:
        for i in range(300):
            got: List[Any] = []
            channel = sub.subscribe(f"live-{i}")
            channel.watch(got.append)
            assert channel.wait_subscribed(5)
            pub.subscribe(f"live-{i}").publish(i)
            wait_until(lambda got=got: got, 5, message=f"message {i}")
            assert got == [i]
            channel.unsubscribe()


def test_worker_messages_reach_every_other_worker_of_every_server_once(hub_servers):
    servers = hub_servers()
    wait_linked(servers)
    clients = list(on_each_worker(servers[1]).values())
    try:
        sender = clients[0]
        sender_pid = whoami(sender)
        sender.emit("to-workers", {"hello": "everyone"})
        wait_until(lambda: sum(len(s.events("onWorkerMessage")) for s in servers) >= 5, 5)
    finally:
        for client in clients:
            client.close()
    events = [event for server in servers for event in server.events("onWorkerMessage")]
    assert len(events) == 5 and sender_pid not in {event["pid"] for event in events}
    assert len({event["pid"] for event in events}) == 5


def test_a_wrong_key_and_no_key_are_refused_and_logged(hub_servers, serve):
    a, b = hub_servers(others=1)
    wrong = serve("apps.pubsub:worker", "--workers", "1", "--brokers", "1", "--horizontal-key", "not the key",
                  "--scalers-urls", f"ws://127.0.0.1:{a.hub_port}", "--no-auto-ping", mode="scale")
    assert "does not hold the horizontal key; it is not our hub" in wrong.wait_for_log("it is not our hub",
                                                                                         timeout=10)
    with socket.create_connection(("127.0.0.1", a.hub_port), timeout=5) as intruder:  # no key at all
        intruder.sendall(wire.encode_hello(1, wire.new_nonce(), b"12345678"))
        (kind, _), = wire.FrameParser().feed(intruder.recv(1000))
        assert kind == wire.CHALLENGE
        intruder.sendall(wire.encode_proof(b"\0" * wire.PROOF_SIZE))
        assert intruder.recv(100) == b""
    assert "it does not hold the horizontal key" in a.wait_for_log("it does not hold the horizontal key")
    assert deliver_across(a, b)  # the real servers are unaffected


def test_a_killed_hub_is_restarted_and_delivery_is_back_within_5s(hub_servers):
    a, b, c = hub_servers(hub_flags=("--restart-on-fail",))
    wait_linked([a, b, c])
    hub_pid = int(re.search(r">>> Hub on: \d+, PID: (\d+)", a.log()).group(1))
    os.kill(hub_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: deliver_across(b, c), 5, interval=0.1, message="cross-server delivery is back")
    assert time.monotonic() - killed < 5.0
    assert re.search(r">>> Hub on: \d+, PID: \d+ \(restarted\)", a.log())


def test_a_server_killed_whole_leaves_the_others_unaffected(hub_servers):
    a, b, c = hub_servers()
    wait_linked([a, b, c])
    pids = {server: set(worker_pids(server)) for server in (a, c)}
    os.killpg(b.process.pid, signal.SIGKILL)
    b.process.wait(5)
    assert deliver_across(a, c) and deliver_across(c, a)
    for server in (a, c):
        assert set(worker_pids(server)) == pids[server]
        assert "died" not in server.log()


def test_tls_with_a_test_ca_and_a_wrong_ca_refused(hub_servers, serve, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, ca_path, wrong_path = tmp_path / "hub.pem", tmp_path / "ca.pem", tmp_path / "wrong.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    ca.cert_pem.write_to_path(str(ca_path))
    trustme.CA().cert_pem.write_to_path(str(wrong_path))
    a, b = hub_servers(others=1, scheme="wss", hub_flags=("--master-certfile", str(cert_path),
                                                          "--scalers-ca-certs", str(ca_path)),
                       join_flags=("--scalers-ca-certs", str(ca_path)))
    wait_linked([a, b])
    assert deliver_across(a, b) and deliver_across(b, a)
    wrong = serve("apps.pubsub:worker", "--workers", "1", "--brokers", "1", "--horizontal-key", KEY,
                  "--scalers-urls", f"wss://127.0.0.1:{a.hub_port}", "--scalers-ca-certs", str(wrong_path),
                  "--no-auto-ping", mode="scale")
    log = wrong.wait_for_log("certificate verify failed", timeout=10)
    assert "TLS with the hub at wss://127.0.0.1" in log


def test_a_hub_certificate_names_its_host_only_and_its_own_brokers_join_locally(hub_servers, tmp_path):
    ca = trustme.CA()
    cert_path, ca_path = tmp_path / "hub.pem", tmp_path / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(cert_path))  # no 127.0.0.1 in it
    ca.cert_pem.write_to_path(str(ca_path))
    a, b = hub_servers(others=1, scheme="wss", host="localhost",
                       hub_flags=("--master-certfile", str(cert_path), "--scalers-ca-certs", str(ca_path)),
                       join_flags=("--scalers-ca-certs", str(ca_path)))
    wait_linked([a, b])  # A's brokers joined A's hub on its private Unix socket; B's checked "localhost"
    assert deliver_across(a, b) and deliver_across(b, a)
    assert "certificate verify failed" not in a.log() + b.log()


def test_idle_connections_from_one_address_leave_the_hub_places_for_the_brokers(hub_servers):
    a, b = hub_servers(others=1, join_flags=("--restart-on-fail",))
    wait_linked([a, b])
    squatters = []
    try:
        for _ in range(64):  # every handshake place, if one address could take them all
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", a.hub_port))
            squatters.append(sock)
        broker = int(re.findall(r">>> Broker on: \S+, PID: (\d+)", b.log())[0])
        os.kill(broker, signal.SIGKILL)  # its replacement must join the hub while the squatters sit there
        wait_until(lambda: "(restarted)" in b.log(), 10, message="the broker restarted")
        wait_until(lambda: deliver_across(a, b, "after") and deliver_across(b, a, "after"), 15, interval=0.2,
                   message="B's brokers joined again")
    finally:
        for sock in squatters:
            sock.close()
    refusals = [line for line in a.log().splitlines() if "refused a connection" in line]
    assert refusals and all("127.0.0.2" in line for line in refusals)
    assert len(refusals) <= 20  # a line a second at most; the rest counted in them
