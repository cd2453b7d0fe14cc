"""Brokers and workers prove they hold the cluster key without sending it (issue 7, item 9)."""
from __future__ import annotations

import os
import re
import signal
import socket
import time

from helpers import on_each_worker, subscribe

from clusterws_gevent.protocol import broker_wire as wire
from clusterws_gevent.testing import wait_until


def broker_pid(server) -> int:
    return int(re.search(r">>> Broker on: \S+, PID: (\d+)", server.log()).group(1))


def frames_of(data: bytes):
    return wire.FrameParser().feed(data)


def test_a_process_without_the_cluster_key_is_refused_and_never_sees_it(serve_cluster):
    server = serve_cluster(workers=1, brokers=1)
    with socket.create_connection(("127.0.0.1", server.broker_ports[0]), timeout=5) as intruder:
        intruder.sendall(wire.encode_hello(99, wire.new_nonce()))
        (kind, challenge), = frames_of(intruder.recv(1000))
        assert kind == wire.CHALLENGE  # a nonce and a proof: nothing that reveals the key
        intruder.sendall(wire.encode_proof(b"\0" * wire.PROOF_SIZE))
        assert intruder.recv(100) == b""  # closed, no WELCOME
    assert "it does not hold this cluster's key" in server.wait_for_log("does not hold this cluster's key")


def test_before_the_handshake_a_broker_takes_no_large_frame(serve_cluster):
    server = serve_cluster(workers=1, brokers=1)
    with socket.create_connection(("127.0.0.1", server.broker_ports[0]), timeout=5) as intruder:
        intruder.sendall((64 << 20).to_bytes(4, "big") + bytes([wire.HELLO]) + b"x" * 60000)
        started = time.monotonic()
        try:
            assert intruder.recv(100) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 1.0
    server.wait_for_log("refused a connection from")


def test_connections_in_their_handshake_are_capped_and_workers_still_join(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", workers=2, brokers=1)
    silent = []
    try:
        for _ in range(80):  # MAX_HANDSHAKES is 64
            silent.append(socket.create_connection(("127.0.0.1", server.broker_ports[0]), timeout=5))
        closed = []
        for sock in silent:
            sock.settimeout(0.05)
            try:
                closed.append(sock.recv(1) == b"")
            except socket.timeout:
                closed.append(False)
        assert closed.count(True) >= 16 and closed[:64].count(True) == 0
        assert "connections are in their handshake already" in server.log()
    finally:
        for sock in silent:
            sock.close()
    (_, a), (_, b) = on_each_worker(server).items()
    with a, b:
        assert subscribe(a, "news") == ["s", "s", {"news": True}]
        b.emit("publish", {"channel": "news", "data": "still up"})
        assert a.recv_json() == ["p", None, {"news": ["still up"]}]


def test_a_process_squatting_a_dead_brokers_port_is_refused_by_the_workers(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", workers=2, brokers=1)
    port = server.broker_ports[0]
    (_, a), (_, b) = on_each_worker(server).items()
    with a, b:
        assert subscribe(a, "secret-channel") == ["s", "s", {"secret-channel": True}]
        os.kill(broker_pid(server), signal.SIGKILL)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        def bound() -> bool:
            try:
                squatter.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

        wait_until(bound, 5, message="the dead broker's port is free")
        squatter.listen(8)
        squatter.settimeout(5)
        received = b""
        try:
            for _ in range(2):  # each worker's link comes, and finds no broker
                conn, _ = squatter.accept()
                with conn:
                    conn.settimeout(2)
                    received += conn.recv(65536)
                    # a fake challenge, then a publish to inject
                    conn.sendall(wire.encode_challenge(wire.new_nonce(), os.urandom(32))
                                 + wire.encode_publish("secret-channel", [b'"injected"']))
                    try:
                        while conn.recv(65536):
                            pass
                    except OSError:
                        pass
        finally:
            squatter.close()
        assert [kind for kind, _ in frames_of(received)] == [wire.HELLO, wire.HELLO]
        assert b"secret-channel" not in received  # no interest list, no key
        log = server.wait_for_log("does not hold the cluster key")
        assert "it is not our broker" in log
        a.sock.settimeout(0.5)
        try:
            message = a.recv_json()
        except (TimeoutError, socket.timeout):
            message = None
        assert message is None, f"the squatter's publish was delivered: {message}"


def test_two_apps_with_default_brokers_run_side_by_side(serve):
    servers = [serve("apps.pubsub:worker", "--no-auto-ping", "--workers", "2", "--brokers", "2", mode="scale",
                     ready_count=2) for _ in range(2)]
    for server in servers:
        assert re.search(r">>> Broker on: /\S+/broker-1\.sock, PID: \d+", server.log())
        (_, a), (_, b) = on_each_worker(server).items()
        with a, b:
            assert subscribe(a, "news") == ["s", "s", {"news": True}]
            b.emit("publish", {"channel": "news", "data": server.port})
            assert a.recv_json() == ["p", None, {"news": [server.port]}]


def test_the_private_broker_directory_is_private_and_removed_at_exit(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping", "--workers", "1", mode="scale")
    path = re.search(r">>> Broker on: (/\S+)/broker-1\.sock", server.log()).group(1)
    assert os.stat(path).st_mode & 0o777 == 0o700
    server.stop()
    assert not os.path.exists(path)


