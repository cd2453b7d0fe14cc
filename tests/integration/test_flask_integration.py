"""What a Flask team reaches for first (issue 10): publish from a view, a greenlet or a listener,
app.extensions["clusterws"], the app's JSON provider, and the deprecated Socket.emit."""
from __future__ import annotations

import http.client
import json
import warnings

import pytest
from helpers import on_each_worker, subscribe

from clusterws_gevent import ClusterWS
from wsclient import WSClient


def post(port: int, path: str, body: str = ""):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("mode", ["single", "scale"])
def test_a_view_publishes_to_subscribers_on_every_worker(serve, mode):
    flags = ("--workers", "2") if mode == "scale" else ()
    server = serve("apps.flask_publish:worker", "--app", "apps.flask_publish:app", "--no-auto-ping", *flags,
                   mode=mode, ready_count=2 if mode == "scale" else 1)
    clients = list(on_each_worker(server, count=2 if mode == "scale" else 1).values())
    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        status, _ = post(server.port, "/publish/news", "hello from a view")
        assert status == 200
        for client in clients:
            (message,) = client.recv_json()[2]["news"]
            assert message["text"] == "hello from a view"
            assert message["at"] == "Fri, 02 Jan 2026 03:04:05 GMT"  # Flask's JSON provider encoded the datetime
    finally:
        for client in clients:
            client.close()


def test_a_greenlet_and_a_listener_publish_through_the_clusterws_object(serve):
    server = serve("apps.flask_publish:worker", "--app", "apps.flask_publish:app", "--no-auto-ping")
    (client,) = on_each_worker(server, count=1).values()
    with client:
        assert subscribe(client, "ticks", "shouts")[2] == {"ticks": True, "shouts": True}
        ticks = client.recv_json()[2]["ticks"]
        assert isinstance(ticks[0], int)
        client.emit("shout", "hey")
        while True:
            message = client.recv_json()
            if "shouts" in message[2]:
                assert message[2]["shouts"] == ["hey"]
                break


def test_worker_messages_from_a_view_reach_the_other_workers(serve):
    server = serve("apps.flask_publish:worker", "--app", "apps.flask_publish:app", "--workers", "2",
                   "--no-auto-ping", mode="scale", ready_count=2)
    status, body = post(server.port, "/to-workers")
    sender = json.loads(body)["pid"]
    (event,) = server.wait_event("onWorkerMessage")
    assert event["message"] == {"from": sender} and event["pid"] != sender


def test_the_extension_is_set_by_the_constructor_and_init_app():
    flask = pytest.importorskip("flask")
    app = flask.Flask("a")
    cws = ClusterWS(worker=lambda w: None, app=app)
    assert app.extensions["clusterws"] is cws
    other = flask.Flask("b")
    late = ClusterWS(worker=lambda w: None)
    late.init_app(other)
    assert other.extensions["clusterws"] is late and late.options.app is other
    cws.publish("news", 1)  # no worker here and no Redis: dropped and counted (a view under the app's own tests)
    assert cws.dropped_publishes == 1
    with pytest.raises(ValueError):
        cws.publish("", 1)  # what a worker would refuse is refused here too
    with pytest.raises(RuntimeError, match="no ClusterWS worker serves in this process"):
        cws.history("news")


def test_socket_emit_is_deprecated_and_says_what_to_call():
    import logging

    from clusterws_gevent.log import Log
    from clusterws_gevent.options import WebSocketOptions
    from clusterws_gevent.websocket.server import WebSocketServer
    from clusterws_gevent.websocket.socket import Socket

    socket = Socket("s1", None, WebSocketServer(WebSocketOptions(), Log(logging.getLogger("test"))))
    called = []
    socket.on("x", called.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        socket.emit("x", 1)
    assert "use socket.send(event, data) to reach the client" in str(caught[0].message)
    assert caught[0].category is DeprecationWarning
    assert called == [1]  # the server-side listeners still run, as before


def test_the_upgrade_goes_through_wsgi_middleware_and_before_request_hooks(serve):
    server = serve("apps.flask_proxied:worker", "--app", "apps.flask_proxied:app", "--no-auto-ping")
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Tenant": "acme"}
    with WSClient(server.port, "/", headers=headers) as client:
        client.recv_json()
        client.emit("whoami")
        assert client.recv_event("whoami") == {"remote_addr": "203.0.113.7", "tenant": "acme"}
    (event,) = server.wait_event("connected")
    assert (event["remote_addr"], event["scheme"], event["tenant"]) == ("203.0.113.7", "https", "acme")
    with pytest.raises(ConnectionError, match="403"):  # a before_request hook refuses the upgrade
        WSClient(server.port, "/", headers={"X-Tenant": "banned"})
