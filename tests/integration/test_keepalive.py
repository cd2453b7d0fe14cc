"""Keep-alive as protocol.md says (issue 2, item 5)."""
import resource
import selectors
import socket
import time

import pytest

from wsclient import BINARY, PONG, WSClient, frame

PING = (BINARY, b"9")


def test_configuration_message_is_sent_by_default(serve):
    server = serve("apps.basic:worker")
    with WSClient(server.port) as client:
        assert client.recv_json() == ["s", "c", {"autoPing": True, "pingInterval": 20000}]


def test_configuration_message_can_be_turned_off(serve):
    server = serve("apps.basic:worker", "--no-send-configuration-message")
    with WSClient(server.port) as client:
        client.emit("echo", "first")
        assert client.recv_json() == ["e", "echo", "first"]


@pytest.mark.parametrize("answer", [frame(BINARY, b"A"), frame(PONG, b"")], ids=["app-pong-0x41", "protocol-pong"])
def test_pings_every_interval_and_an_answer_keeps_the_socket(serve, answer):
    server = serve("apps.basic:worker", "--ping-interval", "200")
    with WSClient(server.port) as client:
        client.recv_json()
        times = []
        for _ in range(5):
            assert client.recv(skip_pings=False) == PING
            times.append(time.monotonic())
            client.send_raw(answer)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(0.1 < gap < 0.45 for gap in gaps), gaps
        client.emit("echo", "alive")
        assert client.recv_event("echo") == "alive"
    assert len(server.wait_event("pong", count=5)) >= 5


def test_a_silent_socket_is_terminated(serve):
    server = serve("apps.basic:worker", "--ping-interval", "200")
    with WSClient(server.port) as silent:
        silent.recv_json()
        started = time.monotonic()
        assert silent.at_eof()
        assert time.monotonic() - started < 1.5
    (event,) = server.wait_event("close")
    assert event["code"] == 1006


@pytest.mark.slow
def test_pings_stay_on_time_with_5000_idle_sockets(serve):
    count, interval = 5000, 1.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < count + 200:
        pytest.skip(f"needs {count + 200} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = serve("apps.basic:worker", "--ping-interval", str(int(interval * 1000)),
                   "--no-send-configuration-message")
    selector = selectors.DefaultSelector()
    request = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sockets, buffers, opened, pings = [], {}, {}, {}
    pong = frame(BINARY, b"A")

    def pump(timeout):
        """Read what arrived; answer every ping at once, as a real client does."""
        for key, _ in selector.select(timeout=timeout):
            sock = key.fileobj
            data = sock.recv(65536)
            assert data, "the server closed an idle socket that answers its pings"
            buffers[sock] += data
            if sock not in opened:
                if b"\r\n\r\n" not in buffers[sock]:
                    continue
                head, _, buffers[sock] = buffers[sock].partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101")
                opened[sock] = time.monotonic()
            while len(buffers[sock]) >= 3 and buffers[sock][:3] == b"\x82\x01\x39":
                buffers[sock] = buffers[sock][3:]
                pings[sock].append(time.monotonic())
                sock.send(pong)
            assert not buffers[sock], f"unexpected bytes {buffers[sock][:20]!r}"

    try:
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request)
            sock.setblocking(False)
            sockets.append(sock)
            buffers[sock] = b""
            pings[sock] = []
            selector.register(sock, selectors.EVENT_READ)
            if i % 50 == 0:
                pump(0)
        deadline = time.monotonic() + 20  # connecting may take a while on a slow machine
        while len(opened) < count and time.monotonic() < deadline:
            pump(0.05)
        watch_until = time.monotonic() + 3.5 * interval
        while time.monotonic() < watch_until:
            pump(0.05)
        assert len(opened) == count, f"only {len(opened)} of {count} sockets connected"
        late = []
        for sock in sockets:
            marks = [opened[sock]] + pings[sock]
            gaps = [b - a for a, b in zip(marks, marks[1:])] + [watch_until - marks[-1]]
            # protocol.md: the client closes with 4001 when no ping came within pingInterval + 500 ms
            if max(gaps) > interval + 0.5:
                late.append(max(gaps))
        assert not late, f"{len(late)} sockets waited over {interval + 0.5}s for a ping (worst {max(late):.2f}s)"
        assert min(len(p) for p in pings.values()) >= 3
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
