"""The example's own tests, with the test client: ``python -m pytest examples/flask_app/test_app.py``.

The app's worker runs in this process (``cws.test_client``); the Flask test client logs in,
and the WebSocket carries its session cookie, as a browser's would.
"""
import os

import pytest

os.environ.setdefault("SECRET_KEY", "the example's tests")  # the app refuses to start without one
from app import app, cws  # noqa: E402

from clusterws_gevent.client import ConnectError  # noqa: E402


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


def test_a_client_cannot_publish_to_chat_itself():
    with cws.test_client(flask_test_client=logged_in("eve")) as eve, \
            cws.test_client(flask_test_client=logged_in("bob")) as bob:
        assert eve.subscribe("chat") and bob.subscribe("chat")
        eve.publish("chat", {"name": "admin", "text": "x" * 10_000})  # onPublish refuses it
        eve.emit("say", "hello")  # through "say": attributed to eve
        (message,) = bob.get_received()
        assert message["data"]["name"] == "eve" and message["data"]["text"] == "hello"


def test_the_page_comes_with_the_chats_last_messages_and_their_position():
    ann = logged_in("ann")
    with cws.test_client(flask_test_client=logged_in("bob")) as bob:
        assert bob.subscribe("chat")
        bob.emit("say", "earlier")
        bob.get_received()  # the message went round: it is in the history
    page = ann.get("/").get_data(as_text=True)
    assert '"text": "earlier"' in page and '"epoch": "' in page
    assert ann.get("/who").get_json() == {"users": []}  # nobody is in the chat now
