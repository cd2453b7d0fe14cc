"""Every use of gevent's private parts, in one place.

pywsgi has no public hook for what the WebSocket handler needs: refusing a
request before its body with our own status (a slow client, headers too large),
recording a response the handler wrote itself (a 101, a refusal) for the access
log, building the request's headers from our own parse (pywsgi's ``OldMessage``),
freeing the request's objects for a socket's lifetime, and giving the
connection's socket up to a parked WebSocket (gevent's sockets keep their
non-blocking C-level socket in ``_sock``, and OpenSSL's connection in ``_sslobj``,
as the standard library's do). These are the private names it touches
(:data:`PRIVATE_NAMES`); ``tests/unit/test_pywsgi_adapter.py`` checks them on the
installed gevent, and tox runs it on the oldest gevent we support
(``gevent-oldest``) as well as the newest, below the upper pin of ``setup.cfg``.
"""
from __future__ import annotations

import _socket
from typing import Any, List, Optional, Tuple

from gevent import pywsgi

from ..net.tls_socket import from_gevent

__all__ = ["HandlerAdapter", "PRIVATE_NAMES", "MODULE_PRIVATE_NAMES", "SOCKET_PRIVATE_NAMES", "request_headers"]

#: The private names of pywsgi's handler used below (checked by the tests on each gevent)...
PRIVATE_NAMES = ("_handle_client_error", "_orig_status")
#: ... of pywsgi's module (its request headers' class, an ``email.message.Message``) ...
MODULE_PRIVATE_NAMES = ("OldMessage",)
#: ... and of gevent's sockets (``_sock``: the C-level socket; ``_sslobj``: OpenSSL's connection).
SOCKET_PRIVATE_NAMES = ("_sock", "_sslobj")


def request_headers(fields: List[Tuple[str, str]]) -> Any:
    """The request's headers as pywsgi's handler reads them (``get``, ``headers``, ``status``...)
    from fields we parsed: pywsgi's own parse goes through the ``email`` package's feed parser,
    a sixth of the server's CPU per WebSocket connection. ``_headers`` is the list of
    (name, value) an ``email.message.Message`` keeps (the same since Python 2)."""
    message = pywsgi.OldMessage()
    message._headers = fields
    return message


class _GivenUp:
    """What the handler holds once its socket went to a WebSocket: pywsgi's clean-up
    (``handle``: read what is left, close) finds nothing to touch."""

    _sock = None

    def close(self) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        raise OSError("the connection was given up to a WebSocket")

    def settimeout(self, timeout: Optional[float]) -> None:
        pass


class HandlerAdapter(pywsgi.WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler with named hooks instead of its private ones."""

    socket: Any

    def refuse_client_error(self, error: Exception) -> Optional[Tuple[str, bytes]]:
        """A request failed before the app (a timeout, bad headers): ``(status, response)``
        to send instead of pywsgi's own answer, or None for pywsgi's."""
        return None

    def _handle_client_error(self, ex: Exception) -> Any:  # pywsgi's private hook
        refusal = self.refuse_client_error(ex)
        return refusal if refusal is not None else super()._handle_client_error(ex)

    def record_response(self, code: int, phrase: str, length: int) -> None:
        """The handler wrote a response itself: what the access log says of it."""
        self.code = code
        self._orig_status = f"{code} {phrase}"  # what pywsgi's log line prints
        self.status = self._orig_status.encode("latin-1")
        self.response_length = length

    def take_socket(self) -> Any:
        """Give the connection up to a WebSocket served parked: its non-blocking C-level
        socket, or a :class:`~clusterws_gevent.net.tls_socket.TLSSocket` over it and
        OpenSSL's connection (after the TLS handshake gevent made). The handler closes
        nothing afterwards: the WebSocket's connection owns the file descriptor (a plain
        socket's is moved to a C-level socket of its own, since the server closes the
        gevent socket it accepted; a TLS socket's was already, by gevent's ``SSLSocket``)."""
        sock = self.socket
        self.socket = _GivenUp()
        if getattr(sock, "_sslobj", None) is not None:
            return from_gevent(sock)
        raw = _socket.socket(sock.family, sock.type, sock.proto, sock.detach())
        raw.setblocking(False)
        return raw

    def release(self, name: str) -> Any:
        """Drop the attribute ``name`` of this handler (the request's headers, its environ)
        and return it, or None: what a socket does not need is freed for its lifetime."""
        return self.__dict__.pop(name, None)
