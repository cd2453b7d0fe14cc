"""Server, Flask on the same port, the command line and verifyConnection (issue 2, items 2 and 4)."""
import http.client
import json
import subprocess
import sys

import pytest

from conftest import TESTS_DIR
from wsclient import WSClient


def http_get(port, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode(), response.getheader("Set-Cookie")
    finally:
        connection.close()


def test_cli_serves_flask_and_websockets_on_one_port_with_ws_path(serve):
    server = serve("apps.basic:worker", "--app", "apps.flask_site:app", "--ws-path", "/ws", "--no-auto-ping")
    assert http_get(server.port, "/")[:2] == (200, "hello from flask")
    assert http_get(server.port, "/ws")[:2] == (200, "a plain GET on the WebSocket path reaches Flask")
    with WSClient(server.port, "/ws") as client:
        client.recv_json()
        client.emit("echo", "on /ws")
        assert client.recv_event("echo") == "on /ws"
    with pytest.raises(ConnectionError, match="404"):
        WSClient(server.port, "/elsewhere")
    assert not server.events("connection", path="/elsewhere")


def test_cli_monkey_patches_before_importing_the_users_modules(serve):
    server = serve("apps.basic:worker", "--app", "apps.flask_site:app")
    info = json.loads(http_get(server.port, "/info")[1])
    assert info["patched_at_import"] is True
    (event,) = server.wait_event("worker")
    assert event["patched_at_import"] is True and event["has_app"] is True


def test_cluster_run_from_a_script_with_seed_option_names(serve):
    from clusterws_gevent.testing import free_port

    port = free_port()
    serve(port=port, command=[sys.executable, "-m", "apps.run_direct", str(port)])
    assert http_get(port, "/")[:2] == (200, "hello from flask")
    with WSClient(port, "/ws") as client:
        assert client.recv_json() == ["s", "c", {"autoPing": False, "pingInterval": 20000}]
    with pytest.raises(ConnectionError, match="404"):
        WSClient(port, "/other")


def test_without_an_app_plain_http_is_told_to_upgrade(serve):
    server = serve("apps.basic:worker")
    assert http_get(server.port, "/")[0] == 426


@pytest.mark.parametrize("flags, message", [
    (["--ws-path", "nope"], "websocket_options.ws_path: must start with '/'"),
    (["--engine", "uws"], "unknown engine 'uws'; available: builtin, gevent-websocket"),
    (["--workers", "0"], "scale_options.workers: must be positive"),
    (["--brokers", "2", "--brokers-ports", "9400"], "Number of broker ports is not the same"),
])
def test_cli_reports_a_bad_option_by_name(flags, message):
    result = subprocess.run([sys.executable, "-m", "clusterws_gevent", "apps.basic:worker", "--mode", "single",
                             *flags], cwd=TESTS_DIR, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert message in result.stderr


def test_cli_reports_a_worker_that_cannot_be_imported():
    result = subprocess.run([sys.executable, "-m", "clusterws_gevent", "apps.nothing:worker", "--mode", "single"],
                            cwd=TESTS_DIR, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "cannot import 'apps.nothing'" in result.stderr


def test_verify_connection_rejects_with_401_or_the_given_code(serve):
    server = serve("apps.basic:worker", "--allowed-origins", "http://other.example", env={"TEST_VERIFY": "reject"})
    with pytest.raises(ConnectionError, match="401"):
        WSClient(server.port, "/", headers={"Origin": "http://other.example"})
    (event,) = server.wait_event("verify")
    assert event["origin"] == "http://other.example" and event["secure"] is False
    assert not server.events("connection")
    server = serve("apps.basic:worker", env={"TEST_VERIFY": "reject-403"})
    client = WSClient(server.port, "/", expect_status=403)
    assert "not in the guest list" in client.response_head or client.status == 403
    client.close()


def test_verify_connection_may_answer_later_from_another_greenlet(serve):
    server = serve("apps.basic:worker", env={"TEST_VERIFY": "later"})
    with WSClient(server.port, "/", headers={"X-Allow": "yes"}) as client:
        client.recv_json()
    with pytest.raises(ConnectionError, match="401"):
        WSClient(server.port, "/", headers={"X-Allow": "no"})


def test_verify_connection_that_never_answers_times_out_as_refused(serve):
    server = serve("apps.basic:worker", "--middleware-timeout", "0.5", env={"TEST_VERIFY": "never"})
    with pytest.raises(ConnectionError, match="401"):
        WSClient(server.port, "/")
    server.wait_for_log("verifyConnection did not call next() within 0.5s")


def test_verify_connection_sees_the_flask_session_and_cookies(serve):
    server = serve("apps.basic:worker", "--app", "apps.flask_site:app", env={"TEST_VERIFY": "session"})
    with pytest.raises(ConnectionError, match="401"):
        WSClient(server.port, "/")  # no login: no session user
    status, _, cookie = http_get(server.port, "/login/ann")
    assert status == 200 and cookie
    session_cookie = cookie.split(";", 1)[0]
    with WSClient(server.port, "/", headers={"Cookie": session_cookie + "; theme=dark"}) as client:
        client.recv_json()
    event = server.events("verify")[-1]
    assert event["session"] == {"user": "ann"} and event["cookies"]["theme"] == "dark"


def test_all_six_middleware_kinds_are_stored(serve):
    server = serve("apps.basic:worker", env={"TEST_ALL_MIDDLEWARE": "1"})
    (event,) = server.wait_event("middleware-installed")
    assert event["kinds"] == sorted(["verifyConnection", "onSubscribe", "onUnsubscribe", "onChannelOpen",
                                     "onChannelClose", "onWorkerMessage"])


def test_publish_in_process_reaches_subscribers(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    with WSClient(server.port) as a, WSClient(server.port) as b:
        for client in (a, b):
            client.recv_json()
            client.send_text('["s","s",["news"]]')
            assert client.recv_json() == ["s", "s", {"news": True}]
        a.emit("publish", {"channel": "news", "data": {"headline": 1}})
        for client in (a, b):
            assert client.recv_json() == ["p", None, {"news": [{"headline": 1}]}]
