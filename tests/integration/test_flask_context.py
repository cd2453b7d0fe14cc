"""Flask sockets are parked like the rest (issue 16): each socket's listeners run in its upgrade
request's context (the same ``request``, ``session``, ``g`` for its life), with no greenlet per
socket; a blocked listener holds up no other socket; teardown hooks run once, when it ends."""
import http.client
import time

import pytest
from helpers import open_idle, rss_kib

from clusterws_gevent.testing import wait_until
from wsclient import WSClient


def login(port, user):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", f"/login/{user}")
        response = connection.getresponse()
        response.read()
        return response.getheader("Set-Cookie").split(";", 1)[0]
    finally:
        connection.close()


@pytest.fixture
def site(serve):
    return serve("apps.flask_context:worker", "--app", "apps.flask_context:app", "--no-auto-ping")


def test_listeners_share_the_sockets_request_session_and_g_for_its_life(site):
    cookie = login(site.port, "ann")
    with WSClient(site.port, "/", headers={"Cookie": cookie}) as ann, WSClient(site.port) as anonymous:
        ann.recv_json(), anonymous.recv_json()
        ann.emit("context")
        first = ann.recv_event("context")
        assert first["user"] == "ann" and first["path"] == "/" and first["app"] == "apps.flask_context"
        ann.emit("remember", "the news")  # a change to the session, seen by the socket's later listeners
        ann.emit("context")
        second = ann.recv_event("context")
        assert (second["g_messages"], second["seen"], second["id"]) == (2, "the news", first["id"])
        anonymous.emit("context")
        other = anonymous.recv_event("context")
        assert (other["user"], other["g_messages"], other["seen"]) == (None, 1, None)  # its own context
    log = site.log()
    # Flask's own handler writes to request.environ["wsgi.errors"], which the socket keeps
    assert "a listener of ann logs through the app's logger" in log
    assert "Logging error" not in log and "KeyError" not in log


def test_teardown_hooks_run_once_per_socket_when_it_ends(site):
    clients = [WSClient(site.port) for _ in range(3)]
    ids = []
    for client in clients:
        client.recv_json()
        client.emit("context")
        ids.append(client.recv_event("context")["id"])
    assert not [e for e in site.events("teardown-request") if e["socket"] in ids]  # not at the upgrade
    for client in clients:
        client.send_close(1000)
        client.recv_close()
        client.close()
    for kind in ("teardown-request", "teardown-appcontext"):
        wait_until(lambda kind=kind: {e["socket"] for e in site.events(kind)} >= set(ids), message=kind)
    for socket_id in ids:
        assert len(site.events("teardown-request", socket=socket_id)) == 1
        assert len(site.events("teardown-appcontext", socket=socket_id)) == 1
        assert len(site.events("close", socket=socket_id)) == 1


def test_a_listener_blocking_two_seconds_on_one_flask_socket_delays_no_other(site):
    with WSClient(site.port) as blocked, WSClient(site.port) as other:
        blocked.recv_json(), other.recv_json()
        blocked.emit("block", 2)
        blocked.emit("context")  # waits behind the blocked listener: in order
        started = time.monotonic()
        for _ in range(20):
            other.emit("context")
            other.recv_event("context")
        assert time.monotonic() - started < 1.0
        assert blocked.recv_event() == 2  # "blocked" first, then the context reply
        assert blocked.recv_event("context")["g_messages"] == 1


def test_a_greenlet_a_listener_spawns_copies_the_request_context(site):
    cookie = login(site.port, "bob")
    with WSClient(site.port, "/", headers={"Cookie": cookie}) as bob:
        bob.recv_json()
        bob.emit("spawn")
        assert bob.recv_event("spawned") == {"user": "bob", "id": None}  # session copied; g is its own


def test_idle_flask_sockets_hold_no_greenlet_and_a_few_kib(site):
    count = 1000
    cookie = login(site.port, "ann").encode()
    with WSClient(site.port) as probe:
        probe.recv_json()

        def greenlets():
            probe.emit("greenlets")
            return probe.recv_event("greenlets")

        before = greenlets()
        idle = open_idle(site.port, 50, headers=b"Cookie: " + cookie + b"\r\n")
        wait_until(lambda: greenlets() <= before + 5, message="the upgrades' greenlets ended")
        rss_before = rss_kib(site.process.pid)
        idle += open_idle(site.port, count, headers=b"Cookie: " + cookie + b"\r\n")
        try:
            wait_until(lambda: greenlets() <= before + 5, message="the upgrades' greenlets ended")
            per_socket = (rss_kib(site.process.pid) - rss_before) / count
            # a greenlet and its request context per socket cost 20 KiB; parked, about 3
            # (benchmarks/idle_subscribers.sh gives the README's figure)
            assert per_socket < 8, f"{per_socket:.1f} KiB per idle Flask socket"
        finally:
            for sock in idle:
                sock.close()
