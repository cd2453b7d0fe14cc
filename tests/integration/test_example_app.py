"""The example Flask app, run as a user runs it (python examples/flask_app/app.py)."""
import http.client
import sys
import urllib.parse

import pytest

from clusterws_gevent.testing import free_port
from conftest import TESTS_DIR
from wsclient import WSClient

APP = TESTS_DIR.parent / "examples" / "flask_app" / "app.py"


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode(), response.getheader("Set-Cookie")
    finally:
        connection.close()


def login(port, name):
    status, _, cookie = request(port, "POST", "/login", urllib.parse.urlencode({"name": name}),
                                {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302 and cookie
    return cookie.split(";", 1)[0]


def test_example_chat_with_flask_login(serve):
    port = free_port()
    serve(port=port, command=[sys.executable, str(APP), "--port", str(port)])
    status, page, _ = request(port, "GET", "/")
    assert status == 200 and "Log in" in page
    with pytest.raises(ConnectionError, match="401"):
        WSClient(port, "/")  # no session, no WebSocket
    ann, bob = login(port, "ann"), login(port, "bob")
    assert "Logged in as <b>ann</b>" in request(port, "GET", "/", headers={"Cookie": ann})[1]
    with WSClient(port, "/", headers={"Cookie": ann}) as a, WSClient(port, "/", headers={"Cookie": bob}) as b:
        for client in (a, b):
            assert client.recv_json()[:2] == ["s", "c"]
            client.send_text('["s","s",["chat","secret"]]')
            assert client.recv_json() == ["s", "s", {"chat": True, "secret": False}]
        a.emit("say", "hello bob")
        for client in (a, b):
            (message,) = client.recv_json()[2]["chat"]
            assert (message["name"], message["text"]) == ("ann", "hello bob")
        b.emit("echo", {"only": "bob"})
        assert b.recv_event("echo") == {"only": "bob"}


def test_the_examples_own_tests_pass_with_the_test_client():
    """examples/flask_app/test_app.py, in a process of its own (the example monkey-patches at import)."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
                            cwd=str(APP.parent), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
