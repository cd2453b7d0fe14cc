"""Channels and middleware as protocol.md and api.md describe them (issue 3, items 1-3)."""
import time

import pytest
from helpers import rss_kib

from clusterws_gevent.testing import check_delivery_order
from wsclient import WSClient, frame


@pytest.fixture
def server(serve):
    return serve("apps.pubsub:worker", "--no-auto-ping", "--middleware-timeout", "0.5")


def client(server, path="/"):
    ws = WSClient(server.port, path)
    ws.recv_json()  # the configuration message
    return ws


def subscribe(ws, *channels):
    ws.send_text('["s","s",' + str(list(channels)).replace("'", '"') + "]")
    return ws.recv_json()


def test_subscribe_replies_per_channel_in_request_order(server):
    with client(server) as ws:
        reply = subscribe(ws, "chat", "private-x", "news")
        assert reply == ["s", "s", {"chat": True, "private-x": False, "news": True}]
        assert subscribe(ws, "chat") == ["s", "s", {"chat": False}]  # already subscribed


def test_the_reply_waits_for_a_middleware_that_answers_later_from_another_greenlet(server):
    with client(server) as ws:
        started = time.monotonic()
        assert subscribe(ws, "slow-1", "chat") == ["s", "s", {"slow-1": True, "chat": True}]
        assert time.monotonic() - started >= 0.15


def test_a_middleware_that_never_answers_times_out_as_declined(server):
    with client(server) as ws:
        assert subscribe(ws, "never-1") == ["s", "s", {"never-1": False}]
    server.wait_for_log("onSubscribe did not call next() within 0.5s for 'never-1'; declined")


def test_a_failing_middleware_declines_logs_the_socket_and_harms_nothing(server):
    with client(server) as ws:
        ws.emit("state")
        socket_id = ws.recv_event("state")["id"]
        assert subscribe(ws, "boom-1", "chat") == ["s", "s", {"boom-1": False, "chat": True}]
        ws.emit("echo", "alive")
        assert ws.recv_event("echo") == "alive"
    assert f"socket {socket_id}: onSubscribe failed for 'boom-1'" in server.wait_for_log("failure on purpose")


def test_client_publish_reaches_every_subscriber_including_the_publisher(server):
    with client(server) as a, client(server) as b, client(server) as outsider:
        subscribe(a, "chat")
        subscribe(b, "chat")
        outsider.send_text('["p","chat","not subscribed: ignored"]')
        a.send_text('["p","chat",{"n":1}]')
        for ws in (a, b):
            assert ws.recv_json() == ["p", None, {"chat": [{"n": 1}]}]
        outsider.emit("echo", "nothing else came")
        assert outsider.recv_json() == ["e", "echo", "nothing else came"]


def test_publishes_within_a_flush_arrive_as_one_frame_in_order(server):
    with client(server) as ws:
        subscribe(ws, "a", "b")
        ws.send_raw(b"".join(frame(1, f'["p","{ch}",{i}]'.encode()) for i, ch in enumerate("abab")))
        assert ws.recv_json() == ["p", None, {"a": [0, 2], "b": [1, 3]}]


def test_server_publish_batches_in_publish_order(server):
    with client(server) as ws:
        subscribe(ws, "tick")
        ws.emit("burst", {"channel": "tick", "count": 500})
        received = []
        while len(received) < 500:
            received += ws.recv_json()[2]["tick"]
        assert received == list(range(500))


def test_unsubscribe_stops_delivery_and_tells_the_middleware(server):
    with client(server) as ws, client(server) as other:
        subscribe(ws, "chat")
        subscribe(other, "chat")
        ws.send_text('["s","u","chat"]')
        server.wait_event("onUnsubscribe", channel="chat")
        other.send_text('["p","chat","after"]')
        assert other.recv_json() == ["p", None, {"chat": ["after"]}]
        ws.emit("echo", "only this")
        assert ws.recv_json() == ["e", "echo", "only this"]


def test_channel_open_and_close_follow_the_first_and_last_subscriber(server):
    with client(server) as a:
        subscribe(a, "room")
        server.wait_event("onChannelOpen", channel="room")
        with client(server) as b:
            subscribe(b, "room")
            b.send_text('["s","u","room"]')
            server.wait_event("onUnsubscribe", channel="room")
        assert server.events("onChannelOpen", channel="room") == server.events("onChannelOpen", channel="room")[:1]
        assert not server.events("onChannelClose", channel="room")
    # closing the last socket drops its subscriptions: onUnsubscribe, then onChannelClose
    server.wait_event("onChannelClose", channel="room")
    assert len(server.events("onUnsubscribe", channel="room")) == 2


def test_server_code_subscribes_and_unsubscribes_a_socket(server):
    with client(server) as ws, client(server) as publisher:
        ws.emit("server-subscribe", ["news", "private-ok"])  # the server decides: no onSubscribe
        assert ws.recv_event("subscribed") == {"news": True, "private-ok": True}
        ws.emit("channels")
        assert ws.recv_event("channels") == ["news", "private-ok"]
        publisher.emit("publish", {"channel": "private-ok", "data": "for you"})
        assert ws.recv_json() == ["p", None, {"private-ok": ["for you"]}]
        ws.emit("server-unsubscribe", "news")
        assert ws.recv_event("unsubscribed") is True
        ws.emit("channels")
        assert ws.recv_event("channels") == ["private-ok"]
    assert not [e for e in server.events("onSubscribe") if e["channel"] in ("news", "private-ok")]


def test_a_subscriber_that_stops_reading_delays_nobody(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping", "--max-outbox-size", "1048576")
    pid = server.process.pid
    stalled = WSClient(server.port, rcvbuf=4096)
    stalled.recv_json()
    subscribe(stalled, "feed")
    rss_before = rss_kib(pid)
    with client(server) as fast, client(server) as publisher:
        subscribe(fast, "feed")  # the publisher is not subscribed: it publishes through wss.publish
        payload = "x" * 4096
        received, sent = [], 0
        deadline = time.monotonic() + 30
        while len(received) < 3000 and time.monotonic() < deadline:
            while sent < 3000 and sent - len(received) < 200:  # a window, as a real publisher would keep
                publisher.emit("publish", {"channel": "feed", "data": {"i": sent, "d": payload}})
                sent += 1
            received += [m["i"] for m in fast.recv_json()[2]["feed"]]
        assert received == list(range(3000))
    server.wait_for_log("the client is not reading; closing the connection")
    assert rss_kib(pid) - rss_before < 24 * 1024  # the stalled outbox is bounded (1 MiB), not 12 MiB
    stalled.close()


@pytest.mark.parametrize("messages", [10_000, pytest.param(100_000, marks=pytest.mark.slow, id="100000")])
def test_messages_arrive_without_loss_duplicate_or_reordering(server, messages):
    report = check_delivery_order([f"ws://127.0.0.1:{server.port}/"], messages=messages)
    assert report.ok, str(report)


def test_order_checker_detects_gaps_duplicates_reordering_and_foreign_messages():
    from clusterws_gevent.testing import DeliveryLog

    log = DeliveryLog({"a"})
    for seq in (0, 1, 3, 2, 3, 4):
        log.record("p", "a", seq)
    log.record("p", "b", 0)
    assert (log.gaps, log.reorders, log.duplicates, log.foreign) == (0, 1, 1, 1)
    log.record("p", "a", 9)
    assert log.gaps == 4

