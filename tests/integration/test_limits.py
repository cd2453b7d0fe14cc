"""Limits and bad input (issue 2, item 7): a clear close code, and nobody else hurt."""
import socket
import time

import pytest
from helpers import rss_kib

from wsclient import BINARY, CONT, TEXT, WSClient, close_payload, frame


@pytest.fixture
def server(serve, engine):
    return serve("apps.basic:worker", "--engine", engine, "--no-auto-ping", "--max-message-size", "1000")


def opened(server, path="/?error_listener=1"):
    client = WSClient(server.port, path)
    client.recv_json()
    return client


def assert_others_unharmed(server):
    with opened(server, "/") as other:
        other.emit("echo", "unharmed")
        assert other.recv_event("echo") == "unharmed"


@pytest.mark.parametrize("data", [
    frame(TEXT, b"x" * 1001),
    frame(BINARY, b"x" * 600, fin=False) + frame(CONT, b"x" * 600),
], ids=["one-frame", "fragments"])
def test_a_message_over_max_message_size_closes_with_1009(server, data):
    with opened(server) as client:
        client.send_raw(data)
        assert client.recv_close()[0] == 1009
        assert client.at_eof()
    event = server.wait_event("error")[0]
    assert event["close_code"] == 1009 and event["type"] == "MessageTooBig"
    assert server.wait_event("close")[0]["code"] == 1009
    assert_others_unharmed(server)


def test_max_message_size_is_checked_before_the_payload_arrives(server):
    with opened(server) as client:
        client.send_raw(frame(BINARY, b"x" * 50000)[:20])  # a header announcing 50 kB, then nothing
        assert client.recv_close()[0] == 1009


@pytest.mark.parametrize("data", [
    frame(TEXT, b"caf\xe9"),
    frame(TEXT, "é".encode()[:1], fin=False) + frame(CONT, b"\xff"),
], ids=["one-frame", "fragments"])
def test_invalid_utf8_closes_with_1007(server, data):
    with opened(server) as client:
        client.send_raw(data)
        assert client.recv_close()[0] == 1007
    assert server.wait_event("error")[0]["close_code"] == 1007
    assert_others_unharmed(server)


@pytest.mark.parametrize("data", [
    frame(TEXT, b"x", mask=False),
    frame(TEXT, b"x", rsv=4),
    frame(3, b"x"),
    frame(CONT, b"x"),
    frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
    frame(9, b"x" * 126),
    frame(8, b"\x03"),
    frame(8, close_payload(999)),
], ids=["unmasked", "rsv-bit", "reserved-opcode", "stray-continuation", "missing-continuation",
        "big-control-frame", "one-byte-close", "invalid-close-code"])
def test_protocol_violations_close_with_1002(server, data):
    with opened(server) as client:
        client.send_raw(data)
        assert client.recv_close()[0] == 1002
        assert client.at_eof()
    assert server.wait_event("close")[0]["code"] == 1002
    assert_others_unharmed(server)


def test_a_client_that_never_sends_its_request_is_dropped(serve):
    server = serve("apps.basic:worker", "--handshake-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers that never end
        started = time.monotonic()
        assert silent.recv(1024) == b""
        assert slow.recv(1024).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 3
    assert "no request within handshake_timeout (0.5s)" in server.wait_for_log("no request within")
    assert_others_unharmed(server)


def test_a_client_that_stops_reading_is_closed_and_nobody_waits(serve, engine):
    server = serve("apps.basic:worker", "--engine", engine, "--no-auto-ping", "--max-outbox-size", "262144")
    rss_before = rss_kib(server.process.pid)
    stalled = WSClient(server.port, rcvbuf=4096)
    stalled.recv_json()
    stalled.emit("state")
    stalled_id = stalled.recv_event("state")["id"]
    stalled.emit("flood", {"size": 65536, "count": 2000})  # 128 MiB, if nothing stopped it
    # a reading client is served at once meanwhile
    with opened(server, "/") as other:
        for i in range(50):
            other.emit("echo", i)
            assert other.recv_event("echo") == i
    (done,) = server.wait_event("flood-done", id=stalled_id, timeout=10)
    assert done["sent"] < 2000
    assert server.wait_event("close", id=stalled_id)[0]["code"] == 1006
    assert "outbox full" in server.wait_for_log("the client is not reading; closing the connection")
    assert rss_kib(server.process.pid) - rss_before < 32 * 1024  # bounded: the limit, not 128 MiB
    stalled.close()


def test_drop_policy_drops_messages_for_a_slow_client_and_keeps_it(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--max-outbox-size", "262144", "--outbox-overflow", "drop")
    with WSClient(server.port, rcvbuf=4096) as stalled:
        stalled.recv_json()
        stalled.emit("flood", {"size": 65536, "count": 200})
        server.wait_event("flood-done")
        server.wait_for_log("dropped 1 message(s) so far")
        stalled.emit("echo", "still here")
        for _ in range(200):  # the backlog that fitted comes first
            opcode, payload = stalled.recv()
            if payload.startswith(b'["e","echo"'):
                break
        assert payload == b'["e","echo","still here"]'
