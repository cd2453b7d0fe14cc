"""Hostile clients (issue 7): one connection must not stall, bloat or corrupt a worker."""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import pytest
from helpers import echo_latencies, http_head, p99, rss_kib, start_flooder

from clusterws_gevent.testing import free_port, wait_until
from wsclient import BINARY, CONT, PING, PONG, TEXT, WSClient, frame


@pytest.mark.parametrize("engine_name", ["builtin", "gevent-websocket"])
def test_a_flooding_client_does_not_stall_the_others(serve, engine_name):
    server = serve("apps.basic:worker", "--engine", engine_name, "--no-auto-ping")
    flooder = start_flooder(server.port, 5.0)
    try:
        latencies = echo_latencies(server.port, 4.5)
    finally:
        output = flooder.communicate(timeout=15)[0]
    sent = int(output.split()[1])
    assert sent > 4 << 20, f"the flood was too weak to mean anything: {output}"
    assert p99(latencies) < 0.050, f"p99 {p99(latencies) * 1000:.1f} ms"
    assert max(latencies) < 0.250, f"max {max(latencies) * 1000:.1f} ms"


def test_a_flooding_client_does_not_get_a_worker_killed(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--workers", "1", "--worker-timeout", "3",
                   "--brokers-ports", str(free_port()), mode="scale")
    flooder = start_flooder(server.port, 5.0)
    try:
        latencies = echo_latencies(server.port, 5.0)
    finally:
        flooder.communicate(timeout=15)
    assert p99(latencies) < 0.050
    assert "gave no sign of life" not in server.log()
    assert "died" not in server.log()


def in_thread(fn: Callable[[], Any]) -> Future:
    """Run ``fn`` in a thread of the test process (the other client waits meanwhile)."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


# -- memory -------------------------------------------------------------------------------------


def test_a_publish_flood_keeps_the_worker_under_baseline_plus_64_mib(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    pid = server.process.pid
    baseline = rss_kib(pid)
    flooder = start_flooder(server.port, 3.0, "publish")
    try:
        latencies = echo_latencies(server.port, 3.0)
    finally:
        flooder.communicate(timeout=15)
    peak = rss_kib(pid, "VmHWM")
    assert peak - baseline < 64 << 10, f"peak {peak} KiB over a baseline of {baseline} KiB"
    assert max(latencies) < 0.250
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("opcode", [BINARY, TEXT], ids=["binary", "text"])
def test_an_unfinished_fragmented_message_costs_about_its_size(serve, opcode):
    server = serve("apps.basic:worker", "--no-auto-ping")
    pid = server.process.pid
    size = (1 << 20) - 16
    pieces = frame(opcode, b"ab", fin=False) + b"".join(frame(CONT, b"ab", fin=False) for _ in range(size // 2 - 1))
    clients = [WSClient(server.port, "/", timeout=20) for _ in range(3)]
    try:
        for client in clients:
            client.recv_json()
        baseline = rss_kib(pid)
        for client in clients:
            client.send_raw(pieces)
            client.send_raw(frame(PING, b"done"))  # answered once every fragment before it was read
            assert client.recv(skip_pings=True) == (PONG, b"done")
        grown = rss_kib(pid) - baseline
        assert grown < 3 * 2.5 * 1024, f"3 unfinished 1 MiB messages took {grown} KiB"
    finally:
        for client in clients:
            client.close()


def test_request_headers_are_capped_in_total_with_431_and_no_traceback(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--app", "apps.flask_site:app")
    big = {f"X-Big-{i}": "v" * 8000 for i in range(10)}  # 80 KB, each line under http.client's 64 KiB
    many = {f"X-Many-{i}": "v" for i in range(120)}  # over http.client's 100 headers
    for headers in (big, many):
        with pytest.raises(ConnectionError, match="431"):
            WSClient(server.port, "/", headers=headers)
    log = server.wait_for_log("431")  # the second within a second is held by the refusal log's rate limit
    assert "request header fields over websocket_options.max_header_bytes" in log
    assert "Traceback" not in log
    with WSClient(server.port, "/", headers={f"X-Fine-{i}": "v" * 1000 for i in range(50)}) as fine:
        fine.recv_json()


def test_header_lines_are_read_as_rfc_9112_says(serve):
    """Our header parse (pywsgi's went through the email package): folded lines joined, a
    space before the colon refused with 400 and logged, repeated names kept in order."""
    server = serve("apps.basic:worker", "--no-auto-ping", "--app", "apps.flask_site:app")

    def exchange(head: bytes) -> bytes:
        return http_head(server.port, head)

    folded = exchange(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n  b\r\nConnection: close\r\n\r\n")
    assert folded.startswith(b"HTTP/1.1 200")
    spaced = exchange(b"GET / HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n")
    assert spaced.startswith(b"HTTP/1.1 400")
    no_colon = exchange(b"GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
    assert no_colon.startswith(b"HTTP/1.1 400")
    log = server.wait_for_log("not 'name: value'")
    assert "Traceback" not in log


def test_a_flask_socket_keeps_only_the_environ_keys_it_needs(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--app", "apps.flask_site:app")
    with WSClient(server.port, "/", headers={"X-Large": "v" * 60000, "Cookie": "a=" + "c" * 1000}) as client:
        client.recv_json()
        client.emit("environ-keys")
        keys = client.recv_event("environ-keys")
    assert "HTTP_X_LARGE" not in keys and "HTTP_COOKIE" not in keys and "wsgi.input" not in keys
    assert {"PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "HTTP_HOST"} <= set(keys)


# -- channels -----------------------------------------------------------------------------------


def subscribe_raw(client: WSClient, text: str):
    client.send_text(text)
    while True:
        message = client.recv_json()
        if message[:2] == ["s", "s"]:
            return message[2]


def test_invalid_channel_names_get_false_and_the_rest_is_handled(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--max-channel-length", "10")
    with WSClient(server.port, "/") as client:
        client.recv_json()
        reply = subscribe_raw(client, '["s","s",["ok","","\\ud800","' + "x" * 11 + '",5,"ok2","é" ]]')
        assert reply == {"ok": True, "": False, "\ud800": False, "x" * 11: False, "ok2": True, "é": True}
        client.emit("publish", {"channel": "ok2", "data": 1})
        assert client.recv_json() == ["p", None, {"ok2": [1]}]


def test_channels_per_socket_are_capped(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--max-channels-per-socket", "5")
    with WSClient(server.port, "/") as client:
        client.recv_json()
        reply = subscribe_raw(client, json.dumps(["s", "s", [f"c{i}" for i in range(4)]]))
        assert list(reply.values()) == [True] * 4
        assert subscribe_raw(client, '["s","s",["c4","c5"]]') == {"c4": True, "c5": False}
        client.send_text('["s","u","c0"]')
        assert subscribe_raw(client, '["s","s",["c5"]]') == {"c5": True}


def test_a_request_naming_more_channels_than_the_cap_is_refused_whole(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--max-channels-per-socket", "5")
    with WSClient(server.port, "/?error_listener=1") as client:
        client.recv_json()
        client.send_text(json.dumps(["s", "s", [f"c{i}" for i in range(6)]]))
        event = server.wait_event("error")[0]
        assert event["type"] == "IncorrectMessage"
        # nothing was subscribed, and the socket still serves
        assert subscribe_raw(client, json.dumps(["s", "s", [f"c{i}" for i in range(5)]])) == {
            f"c{i}": True for i in range(5)}
    with WSClient(server.port, "/") as client:
        client.recv_json()
        client.send_text(json.dumps(["s", "s", [f"c{i}" for i in range(6)]]))
        assert client.at_eof()
    wait_until(lambda: "refused whole" in server.log(), 5, message="the refusal is logged")


def test_a_huge_subscribe_request_is_refused_before_it_is_decoded_and_stalls_nobody(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    pid = server.process.pid
    names = [f"{i:06d}" for i in range(90_000)]
    request = frame(TEXT, json.dumps(["s", "s", names]).encode())
    assert len(request) < 1 << 20
    baseline = rss_kib(pid)

    def attack():
        for _ in range(3):
            with WSClient(server.port, "/", timeout=20) as attacker:
                attacker.recv_json()
                attacker.send_raw(request)
                assert attacker.at_eof()

    flooder = in_thread(attack)
    latencies = echo_latencies(server.port, 2.0)
    flooder.result(timeout=60)
    assert max(latencies) < 0.250, f"max {max(latencies) * 1000:.0f} ms"
    # the frame itself (1 MiB) is read and dropped; none of its 90,000 names is decoded
    assert rss_kib(pid) - baseline < 16 << 10


def test_bad_channel_names_do_not_corrupt_a_scale_worker(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--workers", "1", "--brokers-ports",
                   str(free_port()), mode="scale")
    with WSClient(server.port, "/") as bad:
        bad.recv_json()
        reply = subscribe_raw(bad, '["s","s",["a","\\ud800","' + "y" * 70000 + '","b"]]')
        assert reply["a"] is True and reply["b"] is True and reply["\ud800"] is False
    with WSClient(server.port, "/") as other:
        other.recv_json()

        def channels_left():
            other.emit("stats")
            return [link["channels"] for link in other.recv_event("stats")["links"]] == [[]]

        wait_until(channels_left, 5, message="the closed socket's channels are released")
        assert subscribe_raw(other, '["s","s",["a"]]') == {"a": True}
        other.emit("publish", {"channel": "a", "data": "works"})
        assert other.recv_json() == ["p", None, {"a": ["works"]}]
    assert "Traceback" not in server.log()


# -- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    '["p","news",NaN]', '["e","echo",1e400]', '["e","echo",-Infinity]', "[" * 5000 + "]" * 5000,
], ids=["nan", "overflow", "infinity", "deep"])
def test_json_that_cannot_round_trip_is_an_incorrect_message(serve, text):
    server = serve("apps.basic:worker", "--no-auto-ping")
    with WSClient(server.port, "/?error_listener=1") as client, WSClient(server.port, "/") as other:
        client.recv_json()
        other.recv_json()
        subscribe_raw(client, '["s","s",["news"]]')
        client.send_text(text)
        event = server.wait_event("error")[0]
        assert event["type"] == "IncorrectMessage"
        client.emit("echo", "still open")  # the error listener decided not to close
        assert client.recv_event("echo") == "still open"
        other.emit("echo", "unharmed")
        assert other.recv_event("echo") == "unharmed"
    with WSClient(server.port, "/") as silent:  # no error listener: terminated, logged, no traceback
        silent.recv_json()
        silent.send_text(text)
        assert silent.at_eof()
    assert "Traceback" not in server.log()


def test_an_exception_in_a_listener_reaches_the_error_listener(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    with WSClient(server.port, "/?error_listener=1") as client:
        client.recv_json()
        client.emit("publish", {"channel": "\ud800", "data": 1})  # the listener's wss.publish raises ValueError
        event = server.wait_event("error")[0]
        assert event["type"] == "ValueError"
        client.emit("echo", "alive")
        assert client.recv_event("echo") == "alive"


# -- origins ------------------------------------------------------------------------------------


def test_a_cross_site_upgrade_is_refused_with_403_and_logged(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    host = f"127.0.0.1:{server.port}"
    with WSClient(server.port, "/", headers={"Origin": f"http://{host}"}) as same_site:
        same_site.recv_json()
    with WSClient(server.port, "/") as no_origin:  # not a browser
        no_origin.recv_json()
    with pytest.raises(ConnectionError, match="403"):
        WSClient(server.port, "/", headers={"Origin": "http://evil.example"})
    log = server.wait_for_log("evil.example")
    assert ("refused a request from 127.0.0.1: 403, WebSocket upgrade: origin 'http://evil.example' is not this "
            "server's origin") in log


def test_allowed_origins_lists_other_sites(serve):
    server = serve("apps.basic:worker", "--no-auto-ping", "--allowed-origins", "https://app.example,http://x.test:8080")
    for origin in ("https://app.example", "http://x.test:8080"):
        with WSClient(server.port, "/", headers={"Origin": origin}) as client:
            client.recv_json()
    with pytest.raises(ConnectionError, match="403"):
        WSClient(server.port, "/", headers={"Origin": f"http://127.0.0.1:{server.port}"})
    anyone = serve("apps.basic:worker", "--no-auto-ping", "--allowed-origins", "*")
    with WSClient(anyone.port, "/", headers={"Origin": "http://evil.example"}) as client:
        client.recv_json()
