"""The example's own tests, with the test client: ``python -m pytest examples/flask_app/test_app.py``.

The app's worker runs in this process (``cws.test_client``); the Flask test client logs in,
and the WebSocket carries its session cookie, as a browser's would.
"""
import pytest
from app import app, cws

from clusterws_gevent.client import ConnectError


def logged_in(name):
    client = app.test_client()
    assert client.post("/login", data={"name": name}).status_code == 302
    return client


def test_two_users_chat():
    with cws.test_client(flask_test_client=logged_in("ann")) as ann, \
            cws.test_client(flask_test_client=logged_in("bob")) as bob:
        assert ann.subscribe("chat") and bob.subscribe("chat")
        assert not ann.subscribe("secret")  # onSubscribe allows "chat" only
        ann.emit("say", "hello bob")
        for user in (ann, bob):
            (message,) = user.get_received()
            assert message["channel"] == "chat" and message["data"]["name"] == "ann"
            assert message["data"]["text"] == "hello bob"


def test_a_view_announces_to_every_subscriber():
    flask_client = logged_in("ann")
    with cws.test_client(flask_test_client=logged_in("bob")) as bob:
        assert bob.subscribe("chat")
        assert flask_client.post("/announce", data={"text": "maintenance at 6"}).status_code == 302
        (message,) = bob.get_received()
        assert message["data"]["text"] == "maintenance at 6"


def test_visitors_without_a_session_get_no_websocket():
    with pytest.raises(ConnectError, match="401"):
        cws.test_client(flask_test_client=app.test_client())


def test_echo_answers_the_sender_only():
    with cws.test_client(flask_test_client=logged_in("ann")) as ann:
        ann.emit("echo", {"only": "ann"})
        assert ann.get_received() == [{"event": "echo", "data": {"only": "ann"}}]
