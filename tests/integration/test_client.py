"""The Python client, clusterws_gevent.client (issue 3, item 4), against real servers."""
import pytest
import trustme

from clusterws_gevent.client import Client, ConnectError
from clusterws_gevent.testing import free_port, wait_until


def url(server, path="/"):
    return f"ws://127.0.0.1:{server.port}{path}"


def test_events_and_raw_messages(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping")
    with Client(url(server)) as client:
        echoes = []
        client.on("echo", echoes.append)

        @client.on("state")
        def state(data):
            echoes.append(("state", data["ready_state"]))

        client.send("echo", {"x": [1, 2]})
        client.send("state", None)
        wait_until(lambda: len(echoes) == 2)
        assert echoes == [{"x": [1, 2]}, ("state", 1)]
        raw = []
        client.on("message", raw.append)  # intercepts every frame from now on
        client.send("raw", "plain")
        wait_until(lambda: raw)
        assert raw == ["plain"]
        assert client.ready_state == 1
    assert client.ready_state == 3


def test_channels_subscribe_watch_publish_unsubscribe(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping")
    with Client(url(server)) as alice, Client(url(server)) as bob:
        answers = []
        chat = alice.subscribe("chat")
        chat.on("subscribed", lambda: answers.append("subscribed"))
        assert chat.wait_subscribed(5) is True and answers == ["subscribed"]
        secret = alice.subscribe("private-room")
        secret.on("canceled", lambda: answers.append("canceled"))
        assert secret.wait_subscribed(5) is False and answers[-1] == "canceled"
        got_a, got_b = [], []
        chat.watch(got_a.append)
        bob_chat = bob.subscribe("chat")
        bob_chat.watch(got_b.append)
        bob_chat.wait_subscribed(5)
        chat.publish({"from": "alice"})
        wait_until(lambda: got_a and got_b)
        assert got_a == got_b == [{"from": "alice"}]  # the publisher gets its own message too
        chat.unsubscribe()
        bob_chat.publish("after alice left")
        wait_until(lambda: len(got_b) == 2)
        assert got_a == [{"from": "alice"}]
        assert alice.get_channel_by_name("chat") is None


def test_the_client_answers_pings_and_stays(serve):
    server = serve("apps.pubsub:worker", "--ping-interval", "150")
    with Client(url(server)) as client:
        pings = []
        client.on("ping", lambda: pings.append(1))
        wait_until(lambda: len(pings) >= 4, timeout=3)
        assert client.ready_state == 1
        assert client.config == {"autoPing": True, "pingInterval": 150}
    assert len(server.events("pong")) >= 4


def test_the_client_closes_with_4001_when_pings_stop(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping", "--no-send-configuration-message")
    client = Client(url(server, "/?fake_config=1"))  # promises a ping every 200 ms, sends none
    closed = []
    client.on("close", lambda code, reason: closed.append(code))
    wait_until(lambda: closed, timeout=3)
    assert closed == [4001]
    assert server.wait_event("close")[0]["code"] == 4001
    client.close()


def test_reconnects_and_resubscribes_after_the_server_restarts(serve):
    port = free_port()
    first = serve("apps.pubsub:worker", "--no-auto-ping", port=port)
    client = Client(f"ws://127.0.0.1:{port}/", auto_reconnect=True, reconnect_min_interval=0.1,
                    reconnect_max_interval=0.3)
    try:
        news = client.subscribe("news")
        assert news.wait_subscribed(5)
        got, closes, opens = [], [], []
        news.watch(got.append)
        client.on("close", lambda code, reason: closes.append(code))
        client.on("open", lambda: opens.append(1))
        first.stop()
        wait_until(lambda: closes, timeout=5)
        second = serve("apps.pubsub:worker", "--no-auto-ping", port=port)
        wait_until(lambda: opens and news.subscribed, timeout=10)
        with Client(f"ws://127.0.0.1:{port}/") as publisher:
            publisher.send("publish", {"channel": "news", "data": "after the restart"})
            wait_until(lambda: got)
        assert got == ["after the restart"]
        assert second.events("onSubscribe", channel="news")
    finally:
        client.close()


def test_a_refused_upgrade_raises_connect_error_with_the_status(serve):
    server = serve("apps.basic:worker", env={"TEST_VERIFY": "reject-403"})
    with pytest.raises(ConnectError) as info:
        Client(url(server))
    assert info.value.status == 403
    with pytest.raises(ConnectError):
        Client(f"ws://127.0.0.1:{free_port()}/", timeout=2)


def test_wss_with_a_trusted_certificate(serve, tmp_path):
    import ssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    server = serve("apps.pubsub:worker", "--certfile", str(tmp_path / "cert.pem"), "--keyfile",
                   str(tmp_path / "key.pem"), "--no-auto-ping")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with Client(f"wss://127.0.0.1:{server.port}/", ssl_context=context) as client:
        echoes = []
        client.on("echo", echoes.append)
        client.send("echo", "secure")
        wait_until(lambda: echoes)
        assert echoes == ["secure"]


def test_fifty_clients_in_one_process_each_get_every_publish_once_in_order(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping")
    clients = [Client(url(server)) for _ in range(50)]
    try:
        got = [[] for _ in clients]
        for client, received in zip(clients, got):
            client.subscribe("all").watch(received.append)
        for client in clients:
            client.get_channel_by_name("all").wait_subscribed(5)
        for data in (1, 2, 3):
            clients[0].send("publish", {"channel": "all", "data": data})
        # a duplicate of 1 or 2 would come before 3: the channel keeps its order
        wait_until(lambda: all(received[-1:] == [3] for received in got))
        assert got == [[1, 2, 3]] * 50
    finally:
        for client in clients:
            client.close()


def test_a_listener_may_close_its_own_client(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping")
    client = Client(url(server))
    closed = []
    client.on("close", lambda code, reason: closed.append(code))
    client.on("echo", lambda data: client.close(4000, "done"))
    client.send("echo", "bye")
    wait_until(lambda: closed)
    assert closed == [4000] and client.ready_state == 3
    assert server.wait_event("close")[0]["code"] == 4000
