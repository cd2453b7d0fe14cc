"""The private parts of gevent.pywsgi we use (websocket/pywsgi_adapter.py), on the
installed gevent: tox runs this on the oldest gevent we support and on the newest."""
import inspect
import io

import gevent
from gevent import pywsgi, socket

from clusterws_gevent.websocket.pywsgi_adapter import PRIVATE_NAMES, HandlerAdapter


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
