"""The private parts of gevent.pywsgi we use (websocket/pywsgi_adapter.py), on the
installed gevent: tox runs this on the oldest gevent we support and on the newest."""
import _socket
import inspect
import io
import ssl

import gevent
import pytest
from gevent import pywsgi, socket
from gevent.ssl import SSLSocket

from clusterws_gevent.net.tls_socket import TLSSocket
from clusterws_gevent.websocket.pywsgi_adapter import (
    MODULE_PRIVATE_NAMES,
    PRIVATE_NAMES,
    SOCKET_PRIVATE_NAMES,
    HandlerAdapter,
    request_headers,
)


class Refused(Exception):
    pass


class Handler(HandlerAdapter):
    def read_request(self, requestline):
        if requestline.startswith("BREW"):
            raise Refused(requestline)  # as headers over max_header_bytes do in ClusterWSHandler
        return super().read_request(requestline)

    def refuse_client_error(self, error):
        if isinstance(error, Refused):
            return ("418", b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
        return None


def exchange(request):
    server = pywsgi.WSGIServer(("127.0.0.1", 0), lambda environ, start: [b""], handler_class=Handler, log=None,
                               error_log=io.StringIO())
    server.start()
    try:
        with socket.create_connection(server.address) as client:
            client.sendall(request)
            with gevent.Timeout(5):
                return client.recv(4096)
    finally:
        server.stop()


def test_the_private_names_are_there():
    for name in PRIVATE_NAMES:
        used = hasattr(pywsgi.WSGIHandler, name) or name in inspect.getsource(pywsgi.WSGIHandler)
        assert used, f"gevent {gevent.__version__}: pywsgi no longer has {name}"


def test_a_handler_gives_its_plain_socket_up_and_pywsgi_closes_nothing_of_it():
    ours, peer = socket.socketpair()
    handler = Handler.__new__(Handler)
    handler.socket = ours
    raw = handler.take_socket()
    assert isinstance(raw, _socket.socket) and raw.gettimeout() == 0.0
    ours.close()  # what the server does with the socket it accepted: the connection lives on
    handler.socket.close()  # pywsgi's clean-up
    peer.sendall(b"still here")
    with gevent.Timeout(5):
        gevent.socket.wait_read(raw.fileno())
    assert raw.recv(100) == b"still here"
    raw.close()
    peer.close()


def test_a_handler_gives_its_tls_socket_up_with_openssls_connection(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    ours, peer = socket.socketpair()
    server_tls = SSLSocket(sock=ours, server_side=True, do_handshake_on_connect=False, _context=server_context)
    client_tls = SSLSocket(sock=peer, server_hostname="localhost", do_handshake_on_connect=False,
                           _context=client_context)
    for name in SOCKET_PRIVATE_NAMES:
        assert hasattr(server_tls, name), f"gevent {gevent.__version__}: SSLSocket no longer has {name}"
    with gevent.Timeout(5):
        gevent.joinall([gevent.spawn(server_tls.do_handshake), gevent.spawn(client_tls.do_handshake)],
                       raise_error=True)
    handler = Handler.__new__(Handler)
    handler.socket = server_tls
    tls = handler.take_socket()
    assert isinstance(tls, TLSSocket)
    client_tls.sendall(b"x" * 40_000)  # three records: one recv takes what OpenSSL and the kernel have
    received = b""
    with gevent.Timeout(5):
        while len(received) < 40_000:
            gevent.socket.wait_read(tls.fileno())
            received += tls.recv(65536)
    assert received == b"x" * 40_000
    assert tls.send(b"back") == 4
    with gevent.Timeout(5):
        assert client_tls.recv(10) == b"back"
    tls.close()
    client_tls.close()


def test_a_client_error_gets_our_answer_and_others_get_pywsgis():
    assert exchange(b"BREW / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 418 ")
    assert exchange(b"NOT A REQUEST\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_a_recorded_response_is_what_the_access_log_prints():
    handler = Handler.__new__(Handler)
    handler.requestline = "GET / HTTP/1.1"
    handler.client_address = ("127.0.0.1", 1234)
    handler.time_start = handler.time_finish = 0.0
    handler.record_response(101, "Switching Protocols", 129)
    line = handler.format_request()
    assert '"GET / HTTP/1.1" 101 129' in line


def test_release_drops_an_attribute_once():
    handler = Handler.__new__(Handler)
    handler.headers = {"a": "b"}
    assert handler.release("headers") == {"a": "b"}
    assert handler.release("headers") is None and "headers" not in handler.__dict__


def test_our_parsed_headers_read_as_pywsgis():
    from gevent import pywsgi

    for name in MODULE_PRIVATE_NAMES:
        assert hasattr(pywsgi, name), name
    headers = request_headers([("Host", "a"), ("Content-Length", "3"), ("X-Two", "b c")])
    assert headers.status == "" and headers.get("host") == "a" and headers.getheader("CONTENT-LENGTH") == "3"
    assert list(headers.headers) == ["Host: a\r\n", "Content-Length: 3\r\n", "X-Two: b c\r\n"]
    del headers["content-length"]
    assert headers.get("content-length") is None and headers.typeheader is None
