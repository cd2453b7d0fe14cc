"""The connection core in-process, over ``socketpair()``: the Outbox, both engines under a
Socket through the one driver (parked, parked over TLS, in a greenlet), and the hub's flush,
each in milliseconds (websockets' sync tests are the model). The integration tests run the same behaviour through real
server processes; these find a regression in the core without one."""
import _socket
import json
import logging
import ssl
import struct

import gevent
import pytest
from gevent import socket
from gevent.ssl import SSLSocket

from clusterws_gevent.log import Log
from clusterws_gevent.net.outbox import Outbox
from clusterws_gevent.net.tls_socket import from_gevent
from clusterws_gevent.options import WebSocketOptions
from clusterws_gevent.pubsub.hub import PubSubHub
from clusterws_gevent.testing import wait_until
from clusterws_gevent.websocket.builtin_engine import BuiltinConnection
from clusterws_gevent.websocket.connection import ServeMode
from clusterws_gevent.websocket.driver import Lot, start
from clusterws_gevent.websocket.gevent_engine import GeventWebSocketConnection
from clusterws_gevent.websocket.server import WebSocketServer
from clusterws_gevent.websocket.socket import Socket
from wsclient import BINARY, CLOSE, CONT, TEXT, close_payload, frame

LOG = Log(logging.getLogger("clusterws_gevent.tests"))


def read_frame(sock):
    """One unmasked server frame: (opcode, payload)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the server closed the connection"
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exactly(8))
    return first & 0x0F, exactly(length)


# -- Outbox -----------------------------------------------------------------------------------


@pytest.fixture
def pair():
    """A connected pair of gevent sockets, both closed after the test."""
    made = []

    def make():
        ends = socket.socketpair()
        made.extend(ends)
        return ends

    yield make
    for end in made:
        end.close()


def test_the_outbox_writes_frames_whole_and_in_order_and_drains_when_the_peer_reads(pair):
    ours, peer = pair()
    ours.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 4096)
    outbox = Outbox(ours, 1 << 24, lambda waiting, refused: pytest.fail("overflow"), lambda exc: pytest.fail(exc))
    frames = [bytes([i]) * 10_000 for i in range(200)]
    for data in frames:
        assert outbox.write(data)
    assert outbox.queued > 0  # the kernel took a part; the rest waits in the outbox, not in a greenlet
    received = bytearray()
    with gevent.Timeout(5):
        while len(received) < len(frames) * 10_000:
            received += peer.recv(1 << 20)
    assert bytes(received) == b"".join(frames)
    wait_until(lambda: outbox.queued == 0)


def test_the_outbox_refuses_a_frame_that_would_pass_its_limit_and_keeps_what_it_holds(pair):
    ours, peer = pair()
    ours.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 4096)
    refused = []
    outbox = Outbox(ours, 100_000, lambda waiting, size: refused.append((waiting, size)), lambda exc: None)
    accepted = 0
    while not refused:
        accepted += outbox.write(b"x" * 10_000)
        assert accepted < 1000, "never refused"
    waiting, size = refused[0]
    assert size == 10_000 and waiting + size > 100_000 and outbox.queued <= 100_000
    outbox.discard()


# -- a Socket over each engine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts():
    """(server context, client context) of a test CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    return server_context, client_context


@pytest.fixture
def served(pair, tls_contexts):
    """``served(engine)``: a Socket over one end of a socketpair, served by the one driver
    (``builtin``: parked; ``builtin-tls``: parked, TLS over the pair; ``gevent-websocket``:
    a greenlet), echoing ``echo`` events and recording its close; with the client's end.
    After the test the client goes away and the connection finishes."""
    started = []

    def serve(engine, **options):
        server = WebSocketServer(WebSocketOptions(auto_ping=False, **options), LOG)
        ours, client = pair()
        finished = []
        if engine == "builtin-tls":
            ours, client = handshake(ours, client, *tls_contexts)
        if engine == "gevent-websocket":
            connection = GeventWebSocketConnection("t1", ours, server.options, LOG, rfile=ours.makefile("rb"))
            lot = Lot(ServeMode.GREENLET, server.runners, lambda: finished.append("released"))
        else:
            raw = from_gevent(ours) if engine == "builtin-tls" else ours._sock
            connection = BuiltinConnection("t1", raw, server.options, LOG)
            lot = Lot(ServeMode.PARKED, server.runners, lambda: finished.append("released"))
        sock = Socket("t1", connection, server)
        sock.on("echo", lambda data: sock.send("echo", data))
        sock.on("close", lambda code, reason: finished.append((code, reason)))
        if lot.mode is ServeMode.PARKED:
            start(connection, sock, lot)  # returns once it waits for bytes: parked
        else:
            gevent.spawn(start, connection, sock, lot)
        started.append((client, finished, connection, ours))
        return sock, client, finished

    yield serve
    for client, finished, connection, _ours in started:
        client.close()
        wait_until(lambda finished=finished: "released" in finished, message="the connection finished")
        rfile = getattr(connection, "_rfile", None)
        if rfile is not None:
            rfile.close()


def handshake(server_end, client_end, server_context, client_context):
    """Both ends of a pair after a TLS handshake (gevent SSLSockets)."""
    server_tls = SSLSocket(sock=server_end, server_side=True, do_handshake_on_connect=False, _context=server_context)
    client_tls = SSLSocket(sock=client_end, server_hostname="localhost", do_handshake_on_connect=False,
                           _context=client_context)
    with gevent.Timeout(5):
        gevent.joinall([gevent.spawn(server_tls.do_handshake), gevent.spawn(client_tls.do_handshake)],
                       raise_error=True)
    return server_tls, client_tls


ENGINES = ["builtin", "builtin-tls", "gevent-websocket"]


@pytest.mark.parametrize("engine", ENGINES)
def test_events_round_trip_in_order(served, engine):
    sock, client, finished = served(engine)
    for i in range(50):
        client.sendall(frame(TEXT, json.dumps(["e", "echo", i]).encode()))
    with gevent.Timeout(5):
        replies = [json.loads(read_frame(client)[1]) for _ in range(50)]
    assert replies == [["e", "echo", i] for i in range(50)]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_close_is_echoed_and_reported_once(served, engine):
    sock, client, finished = served(engine)
    client.sendall(frame(CLOSE, close_payload(4000, "bye")))
    with gevent.Timeout(5):
        assert read_frame(client) == (CLOSE, close_payload(4000, "bye"))
        client.shutdown(_socket.SHUT_WR)
        wait_until(lambda: (4000, "bye") in finished)
    assert finished.count((4000, "bye")) == 1
    wait_until(lambda: "released" in finished)  # the server is told once, in every mode


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_utf8_fails_the_connection_with_1007(served, engine):
    sock, client, finished = served(engine)
    errors = []
    sock.on("error", errors.append)
    client.sendall(frame(TEXT, b'["e","echo","\xff"]'))
    with gevent.Timeout(5):
        opcode, payload = read_frame(client)
    assert opcode == CLOSE and struct.unpack("!H", payload[:2])[0] == 1007
    assert "invalid UTF-8" in str(errors[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_fragmented_and_large_messages_arrive_whole(served, engine):
    sock, client, finished = served(engine)
    text = json.dumps(["e", "echo", "x" * 100_000]).encode()  # several TLS records, several reads
    parts = [text[i:i + 7000] for i in range(0, len(text), 7000)]
    client.sendall(b"".join(frame(TEXT if i == 0 else CONT, part, fin=i == len(parts) - 1)
                            for i, part in enumerate(parts)))
    with gevent.Timeout(5):
        opcode, payload = read_frame(client)
    assert opcode == TEXT and json.loads(payload) == ["e", "echo", "x" * 100_000]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_publish_reaches_the_subscribed_socket(served, engine):
    sock, client, finished = served(engine)
    server = sock._server
    assert server.subscribe(sock, "news")
    for i in range(3):
        server.publish("news", {"n": i})
    server.hub.flush()
    with gevent.Timeout(5):
        opcode, payload = read_frame(client)
    assert json.loads(payload) == ["p", None, {"news": [{"n": 0}, {"n": 1}, {"n": 2}]}]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_close_sends_its_code_and_ends_when_the_client_answers(served, engine):
    sock, client, finished = served(engine)
    sock.close(4001, "done")
    with gevent.Timeout(5):
        assert read_frame(client) == (CLOSE, close_payload(4001, "done"))
        client.sendall(frame(CLOSE, close_payload(4001, "done")))
        assert client.recv(10) == b""  # the server ends TCP first (RFC 6455 §7.1.1)...
        client.shutdown(_socket.SHUT_WR)  # ... and the client follows
        wait_until(lambda: "released" in finished)
    assert finished[0] == (4001, "done")


def test_a_parked_socket_runs_its_messages_in_order_and_gives_its_runner_back(served):
    sock, client, finished = served("builtin")
    server_runners = sock._server.runners
    order = []
    sock.on("slow", lambda data: (gevent.sleep(0.05), order.append("slow")))
    sock.on("fast", lambda data: order.append("fast"))
    client.sendall(frame(TEXT, b'["e","slow",0]') + frame(TEXT, b'["e","fast",0]'))
    wait_until(lambda: order == ["slow", "fast"])
    wait_until(lambda: server_runners.idle() >= 1)  # its runner went back to wait for other work
    sock.awaiting_pong = True  # as after the keepalive's ping
    client.sendall(frame(BINARY, b"A"))  # the client's answer, handled by a runner again
    wait_until(lambda: not sock.awaiting_pong)


# -- the hub's flush --------------------------------------------------------------------------


class Subscriber:
    """A Subscriber (pubsub/hub.py) that keeps what it is sent."""

    def __init__(self):
        self.channels = set()
        self.frames = []

    def add_channel(self, channel):
        if channel in self.channels:
            return False
        self.channels.add(channel)
        return True

    def remove_channel(self, channel):
        return channel in self.channels and not self.channels.discard(channel)

    def take_channels(self):
        channels, self.channels = list(self.channels), set()
        return channels

    def send_frame(self, data):
        self.frames.append(data)
        return True


def test_a_flush_sends_each_subscriber_one_frame_with_its_channels_messages_in_order():
    hub = PubSubHub(LOG)
    both, news_only = Subscriber(), Subscriber()
    for channel in ("chat", "news"):
        hub.subscribe(both, channel)
    hub.subscribe(news_only, "news")
    for i in range(3):
        hub.publish("chat", i)
        hub.publish("news", {"n": i})
    hub.flush()
    assert len(both.frames) == 1 and len(news_only.frames) == 1
    assert json.loads(both.frames[0][2:]) == ["p", None, {"chat": [0, 1, 2], "news": [{"n": 0}, {"n": 1}, {"n": 2}]}]
    assert json.loads(news_only.frames[0][2:]) == ["p", None, {"news": [{"n": 0}, {"n": 1}, {"n": 2}]}]
    hub.flush()
    assert len(both.frames) == 1  # nothing new, nothing sent


# -- the broker and its links -----------------------------------------------------------------


class Delivery:
    """A Delivery (pubsub/connector.py) that keeps what a connector hands it."""

    def __init__(self):
        self.delivered = []
        self.from_workers = []

    def deliver(self, channel, messages, epoch=None, first=0):
        self.delivered.append((channel, list(messages)))

    def worker_message(self, message):
        self.from_workers.append(message)


@pytest.fixture
def broker(tmp_path):
    """A broker in this process on a Unix socket, and connectors to it, all stopped after the test."""
    from clusterws_gevent.scale.broker import Broker
    from clusterws_gevent.scale.broker_client import BrokerConnector

    address = str(tmp_path / "broker.sock")
    server = Broker(address, b"k" * 32, LOG)
    server.start()
    connectors = []

    def connect(worker_id, key=b"k" * 32):
        connector = BrokerConnector([address], key, worker_id, LOG)
        delivery = Delivery()
        connector.start(delivery)
        connectors.append(connector)
        return connector, delivery

    yield connect
    for connector in connectors:
        connector.stop()
    server.stop()


def test_a_route_is_live_when_add_interest_returns_and_carries_publishes_and_worker_messages(broker):
    publisher, _ = broker(1)
    subscriber, delivered = broker(2)
    assert publisher.wait_connected(5) and subscriber.wait_connected(5)
    assert subscriber.add_interest("chat")  # the broker confirmed the route
    for i in range(3):
        publisher.publish("chat", json.dumps(i).encode())
    publisher.publish("elsewhere", b"0")  # nobody's interest: goes nowhere
    wait_until(lambda: sum(len(messages) for _, messages in delivered.delivered) == 3)
    assert [m for channel, messages in delivered.delivered for m in messages] == [b"0", b"1", b"2"]
    assert {channel for channel, _ in delivered.delivered} == {"chat"}
    publisher.publish_to_workers(b'{"hello":1}')
    wait_until(lambda: delivered.from_workers == [b'{"hello":1}'])


def test_a_link_with_the_wrong_key_is_refused(broker):
    intruder, delivered = broker(3, key=b"x" * 32)
    assert not intruder.wait_connected(0.5)
    assert intruder.links_up() == (0, 1)
