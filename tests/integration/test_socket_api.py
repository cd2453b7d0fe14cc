"""The socket API (issue 2, item 3), on both engines, over real sockets to a real server process."""
import json
import time

import pytest
import websocket

from wsclient import BINARY, CLOSE, PING, PONG, TEXT, WSClient, frame


@pytest.fixture
def server(serve, engine):
    return serve("apps.basic:worker", "--engine", engine, "--no-auto-ping")


def connect(server, path="/", **kwargs):
    client = WSClient(server.port, path, **kwargs)
    assert client.recv_json() == ["s", "c", {"autoPing": False, "pingInterval": 20000}]
    return client


def test_events_round_trip_and_connection_event_gets_the_environ(server):
    with connect(server, "/room?who=ann") as client:
        client.emit("echo", {"n": [1, "two", None]})
        assert client.recv_json() == ["e", "echo", {"n": [1, "two", None]}]
        (event,) = server.wait_event("connection")
        assert event["path"] == "/room" and event["query"] == {"who": "ann"} and event["ready_state"] == 1


def test_send_raw_text_and_bytes_go_out_unencoded(server):
    with connect(server) as client:
        client.emit("raw", "plain text, not JSON")
        assert client.recv() == (TEXT, b"plain text, not JSON")
        client.emit("raw-bytes", "bytes")
        assert client.recv() == (BINARY, b"bytes")


def test_a_third_party_client_sees_the_same_wire(server):
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/")
    try:
        assert json.loads(ws.recv()) == ["s", "c", {"autoPing": False, "pingInterval": 20000}]
        ws.send(json.dumps(["e", "echo", "é ü"]))
        assert json.loads(ws.recv()) == ["e", "echo", "é ü"]
    finally:
        ws.close()


def test_close_sends_code_and_reason_and_close_event_fires_once(server):
    with connect(server) as client:
        client.emit("state")
        socket_id = client.recv_event("state")["id"]
        client.emit("close-me", {"code": 4000, "reason": "bye now"})
        assert client.recv_close() == (4000, "bye now")
        client.send_close(4000, "")
        assert client.at_eof()
    (event,) = server.wait_event("close", id=socket_id)
    assert (event["code"], event["reason"]) == (4000, "bye now")
    time.sleep(0.2)  # not synchronisation: a second close event would have to come within this window
    assert len(server.events("close", id=socket_id)) == 1


def test_client_close_is_echoed_and_reported(server):
    with connect(server) as client:
        client.emit("state")
        socket_id = client.recv_event("state")["id"]
        client.send_close(4321, "client leaves")
        assert client.recv_close() == (4321, "client leaves")
        assert client.at_eof()
    (event,) = server.wait_event("close", id=socket_id)
    assert (event["code"], event["reason"]) == (4321, "client leaves")


def test_terminate_drops_the_connection_without_a_close_frame(server):
    with connect(server) as client:
        client.emit("state")
        socket_id = client.recv_event("state")["id"]
        client.emit("terminate-me")
        assert all(opcode != CLOSE for opcode, _ in client.frames_until_eof())
    (event,) = server.wait_event("close", id=socket_id)
    assert event["code"] == 1006


def test_ready_state_and_ids(server):
    with connect(server) as a, connect(server) as b:
        a.emit("state")
        b.emit("state")
        state_a, state_b = a.recv_event("state"), b.recv_event("state")
        assert state_a["ready_state"] == state_b["ready_state"] == 1
        assert state_a["id"] != state_b["id"]


def test_process_message_accepts_a_decoded_list(server):
    with connect(server) as client:
        client.emit("process", ["e", "echo", "via process_message"])
        assert client.recv_event("echo") == "via process_message"


def test_message_listener_intercepts_every_frame(server):
    with connect(server, "/?message_listener=1") as client:
        client.emit("blocked")  # the listener does not pass this one on
        client.emit("echo", 1)  # ... but passes this one to process_message
        assert client.recv_event("echo") == 1
        client.send_binary(b"\x01\x02")
        texts = server.wait_event("message", count=2)
        assert [e["text"] for e in texts[:2]] == ['["e","blocked",null]', '["e","echo",1]']
        assert server.wait_event("message", binary="0102")


def test_app_pong_never_reaches_message_listeners_and_fires_pong(server):
    with connect(server, "/?message_listener=1") as client:
        client.send_binary(b"A")
        client.send_raw(frame(PONG, b"protocol pong"))
        server.wait_event("pong", count=2)
        client.emit("echo", "after")
        assert client.recv_event("echo") == "after"
        assert not any(e["binary"] == "41" for e in server.events("message"))


def test_protocol_ping_is_answered(server):
    with connect(server) as client:
        client.send_raw(frame(PING, b"are you there"))
        assert client.recv_frame() == (PONG, b"are you there", True)


def test_error_listener_gets_the_original_wording(server):
    with connect(server, "/?error_listener=1") as client:
        client.send_text("not a clusterws message")
        (event,) = server.wait_event("error")
        assert event["message"] == "processMessage received incorrect message"
        client.emit("echo", "still open")  # an error listener decides; the socket stays
        assert client.recv_event("echo") == "still open"


def test_without_error_listener_a_bad_message_terminates_that_socket_only(server):
    with connect(server) as bad, connect(server) as good:
        bad.send_text("garbage")
        assert bad.at_eof()
        good.emit("echo", "unharmed")
        assert good.recv_event("echo") == "unharmed"
    assert "processMessage received incorrect message" in server.wait_for_log("terminating it")


def test_listener_exception_is_logged_with_the_socket_id_and_the_socket_lives(server):
    with connect(server) as client:
        client.emit("state")
        socket_id = client.recv_event("state")["id"]
        client.emit("boom")
        client.emit("echo", "after the failure")
        assert client.recv_event("echo") == "after the failure"
    log = server.wait_for_log("listener failure on purpose")
    assert f"socket {socket_id}: listener of 'boom' failed" in log


def test_a_listener_blocking_for_seconds_delays_no_other_socket(server):
    with connect(server) as slow, connect(server) as fast:
        slow.emit("sleep", 3)
        started = time.monotonic()
        for i in range(20):
            fast.emit("echo", i)
            assert fast.recv_event("echo") == i
        assert time.monotonic() - started < 1.5
        assert slow.recv_event("slept") == 3


def test_writes_from_several_greenlets_never_interleave(server):
    with connect(server) as client:
        client.emit("two-writers", {"size": 300000, "count": 20})
        received = [client.recv() for _ in range(40)]
        for opcode, payload in received:
            assert opcode == TEXT
            text = payload.decode()
            assert text.rstrip("0123456789") in ("a" * 300000, "b" * 300000)
        for tag in "ab":
            assert [int(p.decode().lstrip(tag)) for _, p in received if p[:1] == tag.encode()] == list(range(20))


def test_reserved_events_cannot_be_fired_by_a_client(server):
    with connect(server) as client:
        client.emit("state")
        socket_id = client.recv_event("state")["id"]
        client.emit("close", "forged")
        client.emit("echo", "ok")
        assert client.recv_event("echo") == "ok"
    assert server.wait_event("close", id=socket_id)[0]["code"] != "forged"
