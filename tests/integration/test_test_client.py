"""The test client (issue 10): the app's worker in the test's process, the Flask test client's
session carried by the WebSocket, emit / get_received / subscribe / publish."""
from __future__ import annotations

import socket

import pytest
from flask import Flask, session

from clusterws_gevent import ClusterWS, Middleware
from clusterws_gevent.client import ConnectError


@pytest.fixture
def cws():
    app = Flask(__name__)
    app.secret_key = "test"

    @app.route("/login/<name>")
    def login(name):
        session["name"] = name
        return "ok"

    def worker(w):
        wss = w.wss
        wss.add_middleware(Middleware.verifyConnection,
                           lambda info, next: next(info.session is not None and "name" in info.session))

        @wss.on("connection")
        def connected(socket, environ):
            socket.on("whoami", lambda data: socket.send("whoami", session["name"]))
            socket.on("say", lambda text: wss.publish("chat", {"name": session["name"], "text": text}))

    return ClusterWS(worker=worker, app=app)


def logged_in(cws, name):
    flask_client = cws.options.app.test_client()
    assert flask_client.get(f"/login/{name}").status_code == 200
    return flask_client


def test_the_websocket_carries_the_flask_test_clients_session(cws):
    with cws.test_client(flask_test_client=logged_in(cws, "ann")) as ann:
        ann.emit("whoami")
        assert ann.get_received() == [{"event": "whoami", "data": "ann"}]


def test_two_users_chat_through_a_channel(cws):
    with cws.test_client(flask_test_client=logged_in(cws, "ann")) as ann, \
            cws.test_client(flask_test_client=logged_in(cws, "bob")) as bob:
        assert ann.subscribe("chat") and bob.subscribe("chat")
        ann.emit("say", "hello bob")
        expected = [{"channel": "chat", "data": {"name": "ann", "text": "hello bob"}}]
        assert ann.get_received() == expected and bob.get_received() == expected
        bob.publish("chat", "a client publish")
        assert ann.get_received() == [{"channel": "chat", "data": "a client publish"}]


def test_without_a_session_verify_connection_refuses(cws):
    with pytest.raises(ConnectError, match="401"):
        cws.test_client(flask_test_client=cws.options.app.test_client())
    assert "_test_worker" not in cws.__dict__  # the worker stopped with its last client


def test_the_worker_stops_with_the_last_client(cws):
    client = cws.test_client(flask_test_client=logged_in(cws, "ann"))
    port = cws.__dict__["_test_worker"].port
    client.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
