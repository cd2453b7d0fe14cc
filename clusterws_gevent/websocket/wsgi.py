"""One port for Flask and the WebSockets: gevent's pywsgi with our upgrade handler.

A request asking for ``Upgrade: websocket`` is answered here: the path, the
upgrade and the origin are checked; with a Flask app, the request then goes
through ``app.wsgi_app`` (its middleware) and the app's ``before_request`` hooks,
in a ``contextvars.Context`` of the socket's own; verifyConnection runs, the 101
goes out, the ``connection`` listeners run, and the socket is served by the one
driver (``websocket/driver.py``): parked, the handler's greenlet then ends. Any
other request goes to the WSGI app; Flask never sees an upgrade request as a view.
"""
from __future__ import annotations

import contextvars
import itertools
import os
import socket as stdlib_socket
import sys
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import gevent
from gevent import pywsgi
from gevent.event import Event
from gevent.ssl import SSLSocket

from .. import registry
from ..exceptions import HandshakeError
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..options import WebSocketOptions
from ..protocol.deflate import DeflateParams, negotiate
from ..protocol.handshake import check_origin, check_upgrade, http_response, is_upgrade_request, switching_protocols
from ..quoting import quote
from .client_assets import ClientAssets
from .connection import ServeMode
from .driver import Lot, Scope
from .engines import load_engine
from .info import ConnectionInfo
from .pywsgi_adapter import HandlerAdapter, request_headers
from .server import WebSocketServer
from .socket import Socket

__all__ = ["ClusterWSServer", "ClusterWSHandler", "new_socket_id"]

_ids = itertools.count(1)
_id_prefix = os.urandom(4).hex()


def new_socket_id() -> str:
    """A socket id unique across processes: a random per-process prefix and a counter."""
    return f"{_id_prefix}{next(_ids):x}"


def reset_socket_ids() -> None:
    """Give this process a new id prefix (done in every child after ``fork``)."""
    global _id_prefix, _ids
    _id_prefix = os.urandom(4).hex()
    _ids = itertools.count(1)


os.register_at_fork(after_in_child=reset_socket_ids)  # forked workers never share ids, whoever forks them


#: What one HTTP request costs of its connection's read budget: 16 pipelined requests a turn.
REQUEST_COST = 4 * MESSAGE_COST
#: Seconds a client refused past max_connections is told to wait (Retry-After).
RETRY_AFTER = 5


class HandshakeTimeout(stdlib_socket.timeout):
    """The client did not send its request within ``handshake_timeout``."""


class HeadersTooLarge(ValueError):
    """The request's header lines are over ``max_header_bytes`` (or over 100 of them)."""


class BadHeader(ValueError):
    """A request header line that is not ``name: value``."""


#: Header fields of one request at most (http.client's limit, which pywsgi's own parse had).
MAX_HEADERS = 100


class _HeaderReader:
    """The request's reader while its headers are parsed: refuses more than ``limit`` bytes."""

    __slots__ = ("_rfile", "_left")

    def __init__(self, rfile: Any, limit: int) -> None:
        self._rfile = rfile
        self._left = limit

    def readline(self, size: int = -1) -> bytes:
        # never asks for more than one byte past the limit: an attacker's bytes stay in the kernel
        allowed = self._left + 1 if size < 0 else min(size, self._left + 1)
        line: bytes = self._rfile.readline(allowed)
        self._left -= len(line)
        if self._left < 0:
            raise HeadersTooLarge("request header fields over websocket_options.max_header_bytes")
        return line


class ClusterWSHandler(HandlerAdapter):
    """pywsgi's handler, plus the WebSocket upgrade and a deadline on reading each request."""

    server: ClusterWSServer
    environ: Dict[str, Any]
    _upgraded = False  # the request became a WebSocket (nothing more is written as HTTP)
    _deadline: Any = None
    _in_request = False  # counted in the server's requests in progress (a stop waits for it)
    #: The request became a WebSocket: its connection, not this handler, reports when it ends.
    websocket = False
    _accepted: Any = None  # (socket, environ, held) once the app's hook accepted the upgrade
    _budget: Any = None  # this connection's ReadBudget: pipelined requests take turns
    _user: Any = None  # what verifyConnection said the socket is (info.user)

    def handle_one_request(self) -> Any:
        # A client gets handshake_timeout seconds to send its request line and
        # headers (also the idle limit of a keep-alive HTTP connection).
        self._deadline = gevent.Timeout.start_new(self.server.ws_options.handshake_timeout, HandshakeTimeout)
        try:
            return super().handle_one_request()
        finally:
            self._deadline.close()
            self._request_done()
            # Requests pipelined on one keep-alive connection are read and answered without a
            # switch while the kernel has their bytes and room for the answers: each costs its
            # turn, as WebSocket messages do (one client froze a worker for as long as it sent).
            if self._budget is None:
                self._budget = ReadBudget()
            self._budget.spend(REQUEST_COST)

    def read_requestline(self) -> str:
        try:
            line: str = super().read_requestline()
        except HandshakeTimeout:
            # pywsgi closes the connection without a word (a socket.timeout is a socket error to
            # it): a first request that never came is a refusal, logged; an idle keep-alive is not
            if self._budget is None:
                self.server.wss.stats.refuse("timeout")
                self.server.log.refusal("timeout", "closed a connection from %s: no request within "
                                        "handshake_timeout (%gs)", self._peer(),
                                        self.server.ws_options.handshake_timeout)
            raise
        if line:
            self.server.requests_served += 1
        if line and not self._in_request:
            # from here until the response (or the 101) a stop waits for this request
            self._in_request = True
            self.server.request_started()
        return line

    def _request_done(self) -> None:
        if self._in_request:
            self._in_request = False
            self.server.request_finished()

    def MessageClass(self, rfile: Any, *args: Any) -> Any:  # noqa: N802 - pywsgi's name
        """Parse the request headers, at most ``max_header_bytes`` of them in all and at most
        :data:`MAX_HEADERS` fields (http.client's limit), as RFC 9112 reads them: ``name:
        value``, no space before the colon (a 400), obsolete line folding joined with a space."""
        reader = _HeaderReader(rfile, self.server.ws_options.max_header_bytes)
        fields: List[Tuple[str, str]] = []
        while True:
            line = reader.readline()
            if line in (b"\r\n", b"\n", b""):
                return request_headers(fields)
            if line[:1] in (b" ", b"\t") and fields:  # obs-fold: the previous field goes on
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
                continue
            if len(fields) == MAX_HEADERS:
                raise HeadersTooLarge(f"got more than {MAX_HEADERS} headers")
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise BadHeader(f"a header line that is not 'name: value': {quote(line, 64)}")
            fields.append((name, value.strip()))

    def refuse_client_error(self, ex: Exception) -> Optional[Tuple[str, bytes]]:
        if isinstance(ex, HandshakeTimeout):
            self._refused("timeout", 408, "request not received in time")
            return ("408", http_response(408, "request not received in time"))
        if isinstance(ex, HeadersTooLarge):
            self._refused("headers", 431, str(ex))
            return ("431", http_response(431, "request header fields too large"))
        if isinstance(ex, BadHeader):
            self._refused("headers", 400, str(ex))
            return ("400", http_response(400, "bad request header"))
        return None

    def _refused(self, rule: str, status: int, why: str) -> None:
        """Count a refusal by its rule and log it (at most a line a second per rule)."""
        self.server.wss.stats.refuse(rule)
        self.server.log.refusal(rule, "refused a request from %s: %d, %s", self._peer(), status, why)

    def _peer(self) -> str:
        address = self.client_address
        return str(address[0]) if isinstance(address, tuple) and address else str(address or "?")

    def run_application(self) -> None:
        self._deadline.close()
        if is_upgrade_request(self.environ):
            self._serve_websocket()
        elif self._serve_client_asset() or self._serve_operations() or self._serve_admin():
            pass
        elif self.application is None:
            self._respond(426, "this server speaks WebSocket only", [("Upgrade", "websocket")])
        else:
            super().run_application()

    def log_request(self) -> None:
        """One access log line (the common log format, pywsgi's), at info level, when asked."""
        if self.server.access_log:
            (self.server.access_logger or self.server.log).info("%s", self.format_request())

    def _serve_operations(self) -> bool:
        """Answer ``/healthz`` and ``/metrics`` (``metrics_options``); False if it is neither."""
        endpoint = self.server.operations.get(self.environ.get("PATH_INFO", ""))
        if endpoint is None or self.environ.get("REQUEST_METHOD") != "GET":
            return False
        code, content_type, body = endpoint()
        self._write_response(code, HTTPStatus(code).phrase, [("Content-Type", content_type),
                                                             ("Cache-Control", "no-store")], body)
        return True

    def _serve_admin(self) -> bool:
        """Answer a request under the dashboard's path (``admin_options``); False if it is not one.
        With a Flask app, the request goes through the app first, as an upgrade does: its
        middleware and ``before_request`` hooks (a login) run, and the last hook answers."""
        admin = self.server.admin
        if admin is None or not admin.handles(self.environ.get("PATH_INFO", "")):
            return False
        if self.server.through_app:
            self.environ[registry.app_support.upgrade_environ_key] = lambda: admin.app_response(self.environ)
            super().run_application()
            return True
        status, headers, body = admin.respond(self.environ)
        if self.environ.get("REQUEST_METHOD") == "HEAD":
            self._write_response(status, HTTPStatus(status).phrase, headers, b"", len(body))
        else:
            self._write_response(status, HTTPStatus(status).phrase, headers, body)
        return True

    def _serve_client_asset(self) -> bool:
        """Answer a GET of the browser client (``client_path``); False if it is not one."""
        assets = self.server.client_assets
        asset = assets.get(self.environ.get("PATH_INFO", "")) if assets is not None else None
        if asset is None or self.environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return False
        content_type, body, etag = asset
        if self.environ.get("HTTP_IF_NONE_MATCH") == etag:
            self._write_response(304, "Not Modified", [("ETag", etag)], b"")
        else:
            self._write_response(200, "OK", [("Content-Type", content_type), ("ETag", etag),
                                             ("Cache-Control", "no-cache")],
                                 body if self.environ["REQUEST_METHOD"] == "GET" else b"", len(body))
        return True

    def _write_response(self, code: int, phrase: str, headers: Iterable[Tuple[str, str]], body: bytes,
                        length: Optional[int] = None) -> None:
        lines = [f"HTTP/1.1 {code} {phrase}", f"Content-Length: {len(body) if length is None else length}"]
        lines += [f"{name}: {value}" for name, value in headers]
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, code, phrase, close=False)

    # -- the upgrade ------------------------------------------------------------------------------

    def _serve_websocket(self) -> None:
        server = self.server
        options = server.ws_options
        environ = self.environ
        try:
            path = environ.get("PATH_INFO", "")
            if options.ws_path is not None and path != options.ws_path:
                raise HandshakeError(404, f"no WebSocket endpoint at {quote(path)}")
            key = check_upgrade(environ)
            check_origin(environ, options.allowed_origins)
        except HandshakeError as exc:
            self._refused({403: "origin", 404: "path"}.get(exc.status, "handshake"), exc.status,
                          f"WebSocket upgrade: {exc}")
            self._respond(exc.status, str(exc), exc.headers)
            return
        if server.through_app:
            self._serve_through_app(key)
            return
        refusal = self._verify(environ, None, None)
        if refusal is not None:
            self._respond(*refusal)
            return
        socket = self._accept(key)
        # Nothing below needs the environ once the connection listeners have it:
        # free it for the socket's lifetime (memory per idle connection).
        self.environ = {}
        server.wss.serve(socket, self.release("_connection_environ"), server.lot)

    def _serve_through_app(self, key: str) -> None:
        """A Flask app: the upgrade request goes through ``app.wsgi_app`` and its middleware
        (ProxyFix...), its request context is pushed and the ``before_request`` hooks run, as
        for a view; the last hook (``registry.app_support``, Flask's from the face) calls
        :meth:`_upgrade_in_request`. All of it runs in a ``contextvars.Context`` of its own,
        which keeps the request context once the app returned: the socket's messages are
        handled in it (``driver.Scope``), with no greenlet holding it."""
        self.environ[registry.app_support.upgrade_environ_key] = lambda: self._upgrade_in_request(key)
        self.close_connection = True
        context = contextvars.Context()
        result = context.run(self.application, self.environ, self.start_response)
        try:
            if self._accepted is None:  # refused (verifyConnection, a before_request hook): an HTTP response
                self.result = result
                self.process_result()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if self._accepted is not None:
            socket, environ, held = self._accepted
            self._accepted = None
            socket.connection.scope = Scope(context, held)
            context.run(self.server.wss.serve, socket, environ, self.server.lot)

    def _upgrade_in_request(self, key: str) -> Tuple[str, int]:
        """Called by the app's hook, in the request context: verify and answer 101; the socket
        is served once the app returned. Returns what the app answers (its response is not
        written once the upgrade was accepted)."""
        request, session = registry.app_support.current_request_and_session()
        environ = request.environ if request is not None else self.environ
        refusal = self._verify(environ, request, session)
        if refusal is not None:
            code, reason = refusal
            return reason, code
        socket = self._accept(key)
        self.release("_connection_environ")
        self._accepted = (socket, environ, registry.app_support.hold())
        return "", 204

    def _verify(self, environ: Dict[str, Any], request: Any, session: Any) -> Optional[Tuple[int, str]]:
        """Run verifyConnection: None to accept, or the (status, reason) of a refusal (logged)."""
        info = ConnectionInfo(environ, request, session)
        verdict = self.server.wss.verify(info)
        if verdict[0]:
            self._user = info.user
            return None
        _, code, reason = verdict
        self._refused("verify", code, "WebSocket upgrade, by verifyConnection")
        return code, reason or "connection refused"

    def _accept(self, key: str) -> Socket:
        """Answer 101 and build the socket (returns before serving, so that what the
        handshake needed is freed). A parked engine gets the connection's own socket (the
        handler gives it up: ``take_socket``), an engine read by a greenlet the handler's."""
        server = self.server
        agreed = self._negotiate_deflate()
        extensions = [("Sec-WebSocket-Extensions", agreed[0])] if agreed is not None else []
        # one write: the 101 and the config message
        response = switching_protocols(key, extensions) + server.wss.opening_frames
        try:
            # Small frames go out at once, as Node's ws does (no Nagle delay).
            self.socket.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.socket.sendall(response)
        self._set_status(101, "Switching Protocols", len(response))
        socket_id = new_socket_id()
        engine = server.engine
        log = server.log
        self.websocket = True
        if server.lot.mode is ServeMode.GREENLET:
            connection = engine(socket_id, self.socket, server.ws_options, log, rfile=self.rfile)
        else:
            initial = self._take_buffered()
            connection = engine(socket_id, self.take_socket(), server.ws_options, log, initial)
        connection.memory = server.wss.memory
        if agreed is not None:
            connection.enable_deflate(agreed[1])
        log.debug("socket %s: connected from %s", socket_id, self.client_address[0])
        self._request_done()  # a WebSocket now: stopping closes it with 1001 instead of waiting
        self._connection_environ = self.environ
        self.release("headers")  # not needed after the handshake
        socket = Socket(socket_id, connection, server.wss)
        socket.user = self._user
        return socket

    def _negotiate_deflate(self) -> Optional[Tuple[str, DeflateParams]]:
        """permessage-deflate, when on (``websocket_options.compression``) and offered."""
        options = self.server.ws_options
        offer = self.environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")
        if not (options.compression and offer and self.server.engine.supports_deflate):
            return None
        return negotiate(offer, options.compression_window_bits, options.compression_level,
                         options.compression_threshold)

    def _take_buffered(self) -> bytes:
        """The bytes that came after the request headers (the first frames), then free
        the request's 8 KiB read buffer: the engine reads the socket directly (what
        OpenSSL holds beyond it, the driver's first read takes)."""
        sock = self.socket
        try:
            sock.settimeout(0.0)
            data = self.rfile.read1(65536) or b""
        except OSError:
            data = b""  # nothing buffered (a TLS socket says so with an error)
        finally:
            sock.settimeout(None)
        self.rfile.close()
        return data

    def _respond(self, status: int, message: str, headers: Iterable[Tuple[str, str]] = ()) -> None:
        """A small response that ends the connection (a refusal)."""
        self._send(http_response(status, message, headers), status, message, close=True)

    def _send(self, response: bytes, code: int, phrase: str, close: bool) -> None:
        """Write a whole response the handler made itself, within ``handshake_timeout`` (a client
        that never reads holds nothing past it), and record it for the access log."""
        try:
            with gevent.Timeout(self.server.ws_options.handshake_timeout, HandshakeTimeout):
                self.socket.sendall(response)
        except (OSError, HandshakeTimeout):  # HandshakeTimeout is an OSError too (socket.timeout)
            close = True
        self._set_status(code, phrase, len(response), close)

    def _set_status(self, code: int, phrase: str, length: int, close: bool = True) -> None:
        """Record the response for the access log (and end the connection unless ``close`` is False)."""
        if close:
            self.close_connection = True
        self.record_response(code, phrase, length)


class ClusterWSServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """gevent's WSGIServer serving ``application`` and the WebSockets of ``wss`` on one port.

    Args:
        listener: an address or a listening socket.
        application: the WSGI app for non-upgrade requests (a Flask app), or None.
        wss: the WebSocket server of this worker.
        ws_options: the WebSocket options.
        log: where to log.
        ssl_context: serve TLS (https:// and wss://) with this context.
        access_log: write an access log line per request to ``log``.
    """

    handler_class = ClusterWSHandler

    def __init__(self, listener: Any, application: Optional[Callable[..., Any]], wss: WebSocketServer,
                 ws_options: WebSocketOptions, log: Log, ssl_context: Any = None, access_log: bool = False,
                 **kwargs: Any) -> None:
        # Raw greenlets: gevent's Greenlet adds 0.7 KiB per connection and nothing we use
        # (with the default spawn, gevent keeps no pool of handlers either).
        kwargs.setdefault("spawn", gevent.spawn_raw)
        # The app's wsgi.errors is the process's stderr, as under gunicorn: Flask's default log
        # handler writes its own formatted lines there (re-logged by us, each came out as an ERROR
        # with a second timestamp); pywsgi's own errors still go to our logger.
        environ = dict(kwargs.pop("environ", None) or {})
        environ.setdefault("wsgi.errors", _StandardError())
        super().__init__(listener, application, log=None, error_log=_ErrorLog(log), environ=environ, **kwargs)
        self.application = application
        self.wss = wss
        self.ws_options = ws_options
        self.engine = load_engine(ws_options.engine)
        #: The browser client's files (None: not served).
        self.client_assets = ClientAssets(ws_options.client_path) if ws_options.client_path else None
        #: Operations endpoints by path (``/healthz``, ``/metrics``): each gives (status, content type, body).
        self.operations: Dict[str, Callable[[], Tuple[int, str, bytes]]] = {}
        #: The dashboard (``process/admin.py``), when on: ``handles(path)``, ``respond(environ)``.
        self.admin: Any = None
        #: Upgrade requests go through the app first (Flask: its middleware and before_request hooks).
        self.through_app = registry.app_support.is_app(application)
        #: What every WebSocket of this server shares: how it is served (chosen here, once,
        #: from the engine), the runners, and the callback of a finished one.
        self.lot = Lot(self.engine.serve_mode, wss.runners, self.connection_closed)
        #: Write an access log line per request (``log_request``)...
        self.access_log = access_log
        #: ... to our logger, as everything else (pywsgi would write to its own ``log``)...
        self.log: Log = log
        #: ... or to this one (gunicorn's access log).
        self.access_logger: Optional[Log] = None
        #: Requests begun since the start (WebSocket upgrades included): gunicorn's max_requests.
        self.requests_served = 0
        self._ssl_context = ssl_context
        if ssl_context is not None:
            self.environ["wsgi.url_scheme"] = "https"
        self._requests = 0
        self._no_requests = Event()
        self._no_requests.set()
        #: TCP connections open now: HTTP ones and WebSockets (``max_connections``).
        self.open_connections = 0

    #: Called when a connection is accepted, and when it ends (a worker's load, for balancing).
    on_connection_opened: Optional[Callable[[], None]] = None
    on_connection_closed: Optional[Callable[[], None]] = None

    def do_handle(self, *args: Any) -> None:
        # Count a new connection from its accept: a stop then waits for its first request
        # (or handshake), even if it has not arrived yet or the handler has not started.
        self.open_connections += 1
        self.request_started()
        if self.on_connection_opened is not None:
            self.on_connection_opened()
        try:
            super().do_handle(*args)
        except BaseException:
            self.request_finished()
            self.connection_closed()
            raise

    def connection_closed(self) -> None:
        """A connection ended (a worker's load, for balancing)."""
        self.open_connections -= 1
        if self.on_connection_closed is not None:
            self.on_connection_closed()

    def request_started(self) -> None:
        """An HTTP request (or WebSocket handshake) is being handled, or a new connection waits for its first."""
        self._requests += 1
        self._no_requests.clear()

    def request_finished(self) -> None:
        """It was answered (or became a WebSocket)."""
        self._requests -= 1
        if not self._requests:
            self._no_requests.set()

    def wait_requests(self, timeout: float) -> bool:
        """Wait until no HTTP request or handshake is in progress; False after ``timeout``."""
        return bool(self._no_requests.wait(timeout))

    def handle(self, sock: Any, address: Any) -> None:
        handler = None
        try:
            if self.open_connections > self.ws_options.max_connections:
                self._refuse_busy(sock, address)
                return
            if self._ssl_context is not None:
                sock = self._wrap_tls(sock, address)
                if sock is None:
                    return
            handler = self.handler_class(sock, address, self)
            handler._in_request = True  # takes over the count made at accept
            handler.handle()
        finally:
            if handler is None:
                self.request_finished()
            else:
                handler._request_done()
            if handler is None or not handler.websocket:
                if self._ssl_context is not None and sock is not None:
                    sock.close()
                self.connection_closed()  # a WebSocket's connection says so when it ends (Lot.on_finished)

    def _refuse_busy(self, sock: Any, address: Any) -> None:
        """Past ``max_connections``: 503 and Retry-After, written without waiting (a plain
        connection; a TLS one is closed), and the connection closed."""
        self.wss.stats.refuse("max-connections")
        self.log.refusal("max-connections", "refused a connection from %s: 503, this worker holds "
                         "max_connections (%d)", address[0] if isinstance(address, tuple) else address,
                         self.ws_options.max_connections)
        if self._ssl_context is None:
            try:
                sock.setblocking(False)
                sock.send(http_response(503, "this server is at its connection limit; try again later",
                                        [("Retry-After", str(RETRY_AFTER))]))
            except OSError:
                pass

    def _wrap_tls(self, sock: Any, address: Any) -> Any:
        """The TLS socket after its handshake, or None (closed, logged at debug level).

        TLS is wrapped here rather than by StreamServer so that the TLS handshake has a
        deadline too, and so that any ssl.SSLContext (made before or after gevent's
        monkey-patching) gives a cooperative gevent SSLSocket."""
        try:
            tls = SSLSocket(sock=sock, server_side=True, do_handshake_on_connect=False, _context=self._ssl_context)
            with gevent.Timeout(self.ws_options.handshake_timeout, HandshakeTimeout):
                tls.do_handshake()
            return tls
        except OSError as exc:
            self.log.debug("TLS handshake with %s failed: %s", address, exc)
            sock.close()
            return None


class _StandardError:
    """``wsgi.errors``: the process's stderr at the time of each write (a test may replace it)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        sys.stderr.flush()


class _ErrorLog:
    """pywsgi's error log (a file-like object) into our logger."""

    def __init__(self, log: Log) -> None:
        self._log = log

    def write(self, text: str) -> None:
        text = text.rstrip()
        if text:
            self._log.error("%s", text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass
