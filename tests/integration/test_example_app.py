"""The example Flask app, run as a user runs it (python examples/flask_app/app.py)."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.parse

import pytest
from helpers import RedisServer

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
    serve(port=port, command=[sys.executable, str(APP), "--port", str(port)], env={"SECRET_KEY": "the tests'"})
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
    assert "6 passed" in result.stdout


def test_the_example_refuses_to_start_without_a_secret_key_unless_in_debug():
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FLASK_DEBUG")}
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=str(APP.parent), capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode != 0 and "set SECRET_KEY" in result.stderr
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=str(APP.parent), capture_output=True,
                            text=True, timeout=60, env=dict(env, FLASK_DEBUG="1"))
    assert result.returncode == 0, result.stderr


BROWSER_DIR = TESTS_DIR / "browser"
HAS_BROWSER = bool(shutil.which("node") and os.access("/usr/bin/chromium", os.X_OK)
                   and (BROWSER_DIR / "node_modules").is_dir())


class ChatPages:
    """tests/browser/chat.js: the example's page in Chromium, one context per user."""

    def __init__(self, port, *users):
        self.process = subprocess.Popen(["node", str(BROWSER_DIR / "chat.js"), f"http://127.0.0.1:{port}/", *users],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=str(BROWSER_DIR))
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read()
        assert json.loads(line) == {"ready": list(users)}

    def do(self, *words):
        self.process.stdin.write(" ".join(words) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read()
        return json.loads(line)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()
        return self.process.returncode


def say_as(port, name, text):
    """A user who is not on a page (a WebSocket of their own) says ``text``; returns once it went round."""
    with WSClient(port, "/", headers={"Cookie": login(port, name)}) as client:
        client.recv_json()
        client.send_text('["s","s",["chat"]]')
        assert client.recv_json() == ["s", "s", {"chat": True}]
        client.emit("say", text)
        assert client.recv_json()[2]["chat"][0]["text"] == text


@pytest.mark.server  # Chromium and a restart: the server lane, though this module is in the default one
@pytest.mark.skipif(not HAS_BROWSER, reason="needs node, Debian's chromium and `npm ci --prefix tests/browser`")
@pytest.mark.parametrize("store", ["process", "redis"])
def test_the_chat_in_chromium_shows_the_history_and_what_a_page_missed_across_a_restart(serve, tmp_path, store):
    port = free_port()
    command = [sys.executable, str(APP), "--port", str(port)]
    redis = None
    if store == "redis":
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed (.ci/run installs it)")
        redis = RedisServer(tmp_path).start()
        command += ["--redis", redis.url, "--workers", "1"]
    env = {"SECRET_KEY": "the tests'"}
    try:
        first = serve(port=port, command=command, env=env)
        say_as(port, "carol", "said before the pages opened")
        pages = ChatPages(port, "ann", "bob")
        try:
            for user in ("ann", "bob"):  # a page that loads shows the history
                assert any("said before the pages opened" in text for text in pages.do("texts", user)["texts"])
            pages.do("say", "ann", "hello from ann")
            assert any("hello from ann" in text for text in pages.do("wait", "bob", "hello from ann")["texts"])

            first.stop()
            serve(port=port, command=command, env=env)
            say_as(port, "carol", "said while the pages were away")
            for user in ("ann", "bob"):  # a page that reconnects shows what it missed
                texts = pages.do("wait", user, "said while the pages were away")["texts"]
                assert sum("said while the pages were away" in text for text in texts) == 1, texts
                if store == "redis":  # Redis kept the history: recovered, nothing reloaded
                    assert pages.do("eval", user, "chat.recovered")["value"] is True
                    assert sum("hello from ann" in text for text in texts) == 1, texts
                # else: the history died with the process: recovered is false and the page reloaded
            pages.do("say", "bob", "after the restart")
            for user in ("ann", "bob"):
                texts = pages.do("wait", user, "after the restart")["texts"]
                assert sum("after the restart" in text for text in texts) == 1, texts
        finally:
            assert pages.close() == 0
    finally:
        if redis is not None:
            redis.kill()
