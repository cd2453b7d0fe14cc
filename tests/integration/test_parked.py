"""Parked sockets (issue 11): an idle socket of the default engine holds no greenlet, and
what that changes for a listener keeps its promises (order, blocking, the end of a socket)."""
import time

from helpers import open_idle, rss_kib

from clusterws_gevent.testing import wait_until
from wsclient import WSClient


def greenlets(probe):
    probe.emit("greenlets")
    return probe.recv_event("greenlets")


def test_idle_sockets_hold_no_greenlet_and_a_few_kib(serve):
    server = serve("apps.idle:worker", "--no-auto-ping", "--no-send-configuration-message")
    count = 1000
    with WSClient(server.port) as probe:
        before = greenlets(probe)
        idle = open_idle(server.port, 50)  # the first batch grows the heap for the upgrades in flight
        wait_until(lambda: greenlets(probe) <= before + 5, message="the upgrades' greenlets ended")
        rss_before = rss_kib(server.process.pid)
        idle += open_idle(server.port, count)
        try:
            # each upgrade's greenlet ends once its connection listeners ran
            wait_until(lambda: greenlets(probe) <= before + 5, message="the upgrades' greenlets ended")
            per_socket = (rss_kib(server.process.pid) - rss_before) / count
            # a greenlet per socket cost 14.5 KiB in all; parked, 2-3 KiB (benchmarks/idle_subscribers.sh)
            assert per_socket < 6, f"{per_socket:.1f} KiB per idle socket"
            for sock in idle[:10]:  # parked sockets are served when they speak
                sock.sendall(b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(b"\x03\xe8", b"ab")))
                assert sock.recv(16)[:2] == b"\x88\x02"  # the close echoed
        finally:
            for sock in idle:
                sock.close()


def test_a_blocked_listener_keeps_its_sockets_messages_in_order(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--no-send-configuration-message")
    with WSClient(server.port) as client, WSClient(server.port) as other:
        client.emit("sleep", 0.3)
        client.emit("echo", "after the sleep")
        started = time.monotonic()
        other.emit("echo", "meanwhile")
        assert other.recv_event("echo") == "meanwhile"
        assert time.monotonic() - started < 0.25  # another socket is not held up
        assert client.recv() == (1, b'["e","slept",0.3]')
        assert client.recv_event("echo") == "after the sleep"


def test_many_sockets_blocked_at_once_each_get_a_runner(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--no-send-configuration-message")
    clients = [WSClient(server.port) for _ in range(100)]  # more than the idle runners kept (64)
    try:
        started = time.monotonic()
        for client in clients:
            client.emit("sleep", 0.5)
        for client in clients:
            assert client.recv_event("slept") == 0.5
        assert time.monotonic() - started < 3  # they slept side by side, not one after another
    finally:
        for client in clients:
            client.close()


def test_idle_tls_sockets_hold_no_greenlet(serve, certificate):
    certfile, keyfile, client_context = certificate
    server = serve("apps.idle:worker", "--no-auto-ping", "--no-send-configuration-message", "--certfile", certfile,
                   "--keyfile", keyfile)
    count = 1000
    with WSClient(server.port, tls=client_context) as probe:
        before = greenlets(probe)
        idle = open_idle(server.port, 50, tls=client_context)
        wait_until(lambda: greenlets(probe) <= before + 5, message="the upgrades' greenlets ended")
        rss_before = rss_kib(server.process.pid)
        idle += open_idle(server.port, count, tls=client_context)
        try:
            wait_until(lambda: greenlets(probe) <= before + 5, message="the upgrades' greenlets ended")
            per_socket = (rss_kib(server.process.pid) - rss_before) / count
            # OpenSSL's own state is 13-15 KiB per connection (README, Memory); a greenlet would add 7 more
            assert per_socket < 22, f"{per_socket:.1f} KiB per idle TLS socket"
            for sock in idle[:10]:  # parked TLS sockets are served when they speak
                sock.sendall(b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(b"\x03\xe8", b"ab")))
                assert sock.recv(16)[:2] == b"\x88\x02"  # the close echoed
        finally:
            for sock in idle:
                sock.close()
