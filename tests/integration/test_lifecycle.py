"""Stopping, TLS and logging (issue 2, item 2)."""
import http.client
import signal
import time

import pytest

from wsclient import WSClient


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_closes_every_socket_with_1001_and_exits(serve, sig):
    server = serve("apps.basic:worker", "--no-auto-ping")
    clients = [WSClient(server.port) for _ in range(3)]
    try:
        for client in clients:
            client.recv_json()
        server.signal(sig)
        for client in clients:
            assert client.recv_close() == (1001, "server shutting down")
            client.send_close(1001)
        assert server.wait(10) == 0
        assert "stopped" in server.log()
    finally:
        for client in clients:
            client.close()


def test_stop_does_not_wait_forever_for_clients_that_never_answer(serve):
    server = serve("apps.basic:worker", "--no-auto-ping")
    with WSClient(server.port) as mute:
        mute.recv_json()
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert mute.recv_close()[0] == 1001  # and never answers
        assert server.wait(15) == 0
        assert time.monotonic() - started < 10


def test_tls_serves_https_and_wss_on_one_port(serve, certificate):
    certfile, keyfile, client_context = certificate
    server = serve("apps.basic:worker", "--app", "apps.flask_site:app", "--certfile", certfile, "--keyfile", keyfile,
                   "--no-auto-ping")
    assert "on https://127.0.0.1" in server.log()
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=client_context, timeout=5)
    connection.request("GET", "/info")
    response = connection.getresponse()
    assert response.status == 200 and b'"scheme":"https"' in response.read().replace(b" ", b"")
    connection.close()
    with WSClient(server.port, tls=client_context) as client:
        client.recv_json()
        client.emit("echo", "over wss")
        assert client.recv_event("echo") == "over wss"
        client.emit("two-writers", {"size": 200000, "count": 5})  # large frames through TLS, in order
        payloads = [client.recv()[1].decode() for _ in range(10)]
        assert sorted(p.rstrip("0123456789") for p in payloads) == ["a" * 200000] * 5 + ["b" * 200000] * 5


def test_an_sslcontext_is_used_as_given_even_without_monkey_patching(serve, certificate):
    # the script does not patch: the server must still wrap sockets cooperatively
    import sys

    from clusterws_gevent.testing import free_port

    certfile, keyfile, client_context = certificate
    port = free_port()
    serve(port=port, command=[sys.executable, "-m", "apps.run_tls_context", str(port)],
          env={"TEST_CERT": certfile, "TEST_KEY": keyfile})
    with WSClient(port, tls=client_context) as a, WSClient(port, tls=client_context) as b:
        a.recv_json()
        b.recv_json()
        a.emit("echo", "one")
        b.emit("echo", "two")
        assert (a.recv_event("echo"), b.recv_event("echo")) == ("one", "two")


def test_verify_connection_sees_a_secure_connection(serve, certificate):
    certfile, keyfile, client_context = certificate
    server = serve("apps.basic:worker", "--certfile", certfile, "--keyfile", keyfile, env={"TEST_VERIFY": "accept"})
    with WSClient(server.port, tls=client_context) as client:
        client.recv_json()
    assert server.wait_event("verify")[0]["secure"] is True


def test_a_stalled_tls_handshake_is_dropped(serve, certificate):
    import socket

    certfile, keyfile, _ = certificate
    server = serve("apps.basic:worker", "--certfile", certfile, "--keyfile", keyfile, "--handshake-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stalled:
        assert stalled.recv(100) == b""  # no ClientHello: dropped by the deadline


def test_the_built_in_logger_honours_log_level(serve):
    quiet = serve("apps.basic:worker", "--log-level", "warn", ready_text="EVENT")
    with WSClient(quiet.port) as client:
        client.recv_json()
    assert ">>> Worker" not in quiet.log()
    verbose = serve("apps.basic:worker", "--log-level", "debug")
    with WSClient(verbose.port) as client:
        client.recv_json()
    verbose.wait_for_log("connected from 127.0.0.1")
    assert "DEBUG" in verbose.log()


def test_a_logging_logger_is_used_as_given(serve):
    server = serve("apps.logging_app:worker", "--logger", "apps.logging_app:std_logger", ready_text="STDLOG INFO")
    assert "STDLOG INFO myapp.realtime >>> Worker: 1" in server.log()


def test_any_object_with_debug_info_warn_error_is_a_logger(serve):
    server = serve("apps.logging_app:worker", "--logger", "apps.logging_app:seed_logger", "--no-auto-ping",
                   ready_text="SEEDLOG info")
    with WSClient(server.port) as client:
        client.recv_json()
        client.send_text("garbage")  # logged with warning(): this logger only has warn()
        assert client.at_eof()
    assert "SEEDLOG warn socket" in server.wait_for_log("SEEDLOG warn")
