"""A TLS connection with the shape of a non-blocking C-level socket, for the event loop.

After its handshake (gevent's ``SSLSocket``, in the handler's greenlet) a wss://
connection is served like a plain one: parked, its file descriptor watched by the
event loop, read and written without blocking. :class:`TLSSocket` gives it the
plain socket's contract:

- ``recv(n)`` returns up to ``n`` bytes of plaintext, ``b""`` at the end of the
  stream, or raises :class:`BlockingIOError`; a short read means that neither the
  kernel nor OpenSSL holds more now. It keeps reading TLS records until OpenSSL
  wants more bytes from the kernel, so plaintext OpenSSL decrypted ahead (which the
  file descriptor does not show) is never left behind while the socket waits.
- ``send(data)`` writes all of ``data`` or raises :class:`BlockingIOError` (the
  kernel is full); after that the same bytes must be offered again (OpenSSL's
  ``SSL_write`` contract), which the outbox does, since it retries its head.

OpenSSL reads a record at a time from the socket (no read-ahead, Python's default),
so once ``recv`` stopped on "wants more", every byte not yet decrypted is still in
the kernel, and the file descriptor's readiness is the right thing to wait for.
"""
from __future__ import annotations

from ssl import SSLEOFError, SSLWantReadError, SSLWantWriteError, SSLZeroReturnError
from typing import Any

__all__ = ["TLSSocket", "from_gevent"]

_WOULD_BLOCK = (SSLWantReadError, SSLWantWriteError)
_ENDED = (SSLZeroReturnError, SSLEOFError)


class TLSSocket:
    """A TLS connection over a non-blocking socket (see the module docstring).

    Args:
        sock: the connected, non-blocking C-level socket.
        tls: OpenSSL's connection over it, after the handshake (``_ssl._SSLSocket``).
    """

    __slots__ = ("_sock", "_tls", "family", "type")

    def __init__(self, sock: Any, tls: Any) -> None:
        self._sock = sock
        self._tls = tls
        self.family = sock.family
        self.type = sock.type

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of plaintext; ``b""`` at the end of the stream.

        Raises:
            BlockingIOError: nothing to read now.
        """
        tls = self._tls
        try:
            data: bytes = tls.read(size)
        except _WOULD_BLOCK:
            raise BlockingIOError("TLS: no record to read") from None
        except _ENDED:
            return b""
        got = len(data)
        if not got or got == size:
            return data
        parts = [data]  # a record at most: read on until OpenSSL wants the kernel's bytes
        while got < size:
            try:
                more: bytes = tls.read(size - got)
            except (_WOULD_BLOCK + _ENDED):  # the end of the stream shows at the next recv
                break
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts) if len(parts) > 1 else data

    def send(self, data: Any) -> int:
        """Write all of ``data``; returns its length.

        Raises:
            BlockingIOError: the kernel's buffer is full; offer the same bytes again later.
            OSError: the peer asked for a renegotiation (not supported) or the connection broke.
        """
        try:
            written: int = self._tls.write(data)
        except SSLWantWriteError:
            raise BlockingIOError("TLS: the socket's buffer is full") from None
        except SSLWantReadError:
            raise OSError("TLS renegotiation is not supported") from None
        return written

    def pending(self) -> int:
        """Plaintext bytes OpenSSL decrypted and nobody read yet."""
        return int(self._tls.pending())

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._tls = None
        self._sock.close()


def from_gevent(sslsock: Any) -> TLSSocket:
    """The TLS connection of gevent's ``SSLSocket`` ``sslsock`` as a :class:`TLSSocket`; the
    ``SSLSocket`` must not be used (nor closed) afterwards: the TLSSocket owns the connection.

    gevent keeps the C-level socket in ``_sock`` (non-blocking: gevent waits in its own loop)
    and OpenSSL's connection in ``_sslobj``, as the standard library's ``SSLSocket`` does;
    ``tests/unit/test_pywsgi_adapter.py`` checks both names on the installed gevent.
    """
    sock, tls = sslsock._sock, sslsock._sslobj
    if tls is None or sock.gettimeout() != 0.0:
        raise OSError("not a connected, non-blocking gevent SSLSocket")
    return TLSSocket(sock, tls)
