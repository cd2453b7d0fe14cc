"""A bounded, ordered, non-blocking writer for one connection.

``write()`` never blocks and never switches greenlets, so a frame is always
written whole and in order, whichever greenlet writes: frames from several
greenlets never interleave, and a publisher never waits for a slow reader.

A write first tries one non-blocking ``send`` (the common case: the kernel
takes it all, one system call). What the kernel does not take waits in the
outbox, and an event-loop watcher writes it out when the socket becomes
writable: no greenlet per slow socket. A TLS connection is written the same
way, through :class:`~clusterws_gevent.net.tls_socket.TLSSocket` (OpenSSL
encrypts as it writes; a write it could not finish is offered again, whole).

When what waits would pass ``limit`` (a frame larger than ``limit`` is refused
even when nothing waits), the outbox calls ``on_overflow`` (the connection
closes the socket or drops the message) instead of growing: memory stays
bounded whatever the client does. What waits is counted as the memory it holds:
each frame's bytes plus :data:`BUFFER_COST` (a client that sends pings and never
reads queues 2-byte pongs that each hold 60 bytes).

``_on_writable`` runs on the event loop (``loop_`` callbacks must never block or
switch greenlets: see ``net/loop_guard.py``).
"""
from __future__ import annotations

import _socket
import socket
from collections import deque
from typing import Any, Callable, Deque, Optional, Union

from gevent import get_hub

from .sockets import shutdown
from .tls_socket import TLSSocket, from_gevent

__all__ = ["Outbox", "writable_socket", "BUFFER_COST"]

Buffer = Union[bytes, memoryview]

#: Buffers given to one ``sendmsg`` when draining (IOV_MAX is 1024 on Linux).
_MAX_IOV = 256
#: What a waiting frame holds beyond its bytes: the bytes object's header and its queue slot.
BUFFER_COST = 64


def writable_socket(sock: Any) -> Any:
    """What an outbox writes to, without blocking: ``sock`` itself when it is a C-level
    socket or a :class:`TLSSocket`; gevent's non-blocking C-level socket under a gevent
    socket (``_sock``: checked against ``_socket.socket``, since ``socket.socket`` may be
    gevent's own class after monkey-patching); a TLSSocket over a gevent ``SSLSocket``
    (a link that gevent still reads)."""
    if isinstance(sock, (_socket.socket, TLSSocket)):
        return sock
    if getattr(sock, "_sslobj", None) is not None:
        return from_gevent(sock)
    raw = getattr(sock, "_sock", None)
    if not isinstance(raw, _socket.socket):
        raise TypeError(f"cannot write to {sock!r} without blocking")
    return raw


class Outbox:
    """Writes frames to ``sock`` in order, holding at most ``limit`` bytes back.

    Args:
        sock: the connection: a C-level socket, a TLSSocket, or a gevent (SSL) socket.
        limit: bytes that may wait beyond the kernel's buffer.
        on_overflow: called with the number of bytes waiting and the size of the
            refused frame, when a frame would pass ``limit``.
        on_error: called once with the OSError that broke the connection.
    """

    __slots__ = ("_raw", "_gather", "_queue", "_queued", "_limit", "_on_overflow", "_on_error",
                 "_watcher", "_eof", "closed")

    #: What every outbox of this process holds now (the sum of their ``queued``): kept as
    #: frames wait and drain, so that monitoring never walks the sockets.
    held = 0

    def __init__(self, sock: Any, limit: int, on_overflow: Callable[[int, int], None],
                 on_error: Callable[[OSError], None]) -> None:
        raw = self._raw = writable_socket(sock)
        self._gather = type(raw) is not TLSSocket  # TLS writes one buffer at a time (SSL_write)
        self._queue: Optional[Deque[Buffer]] = None  # made when the kernel first refuses bytes
        self._queued = 0
        self._limit = limit
        self._on_overflow = on_overflow
        self._on_error = on_error
        self._watcher: Any = None
        self._eof = False
        #: No more writes are accepted: the outbox was discarded or a write failed.
        self.closed = False

    @property
    def queued(self) -> int:
        """Memory held by what was accepted and not yet taken by the kernel (bytes, plus
        :data:`BUFFER_COST` per frame)."""
        return self._queued

    def write(self, data: bytes) -> bool:
        """Queue ``data`` (a whole frame) after everything written before.

        Returns:
            False when the outbox is closed or full (then ``on_overflow`` ran).
        """
        if self.closed or self._eof:
            return False
        if self._queued + len(data) + BUFFER_COST > self._limit:
            # Checked before any byte is sent, even to an empty outbox: a frame is sent
            # whole or not at all, and no frame may make the outbox pass its limit.
            self._on_overflow(self._queued, len(data))
            return False
        queue = self._queue
        if queue:
            queue.append(data)
            self._queued += len(data) + BUFFER_COST
            Outbox.held += len(data) + BUFFER_COST
            return True
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(exc)
            return False
        if sent == len(data):
            return True
        rest: Buffer = memoryview(data)[sent:] if sent else data
        if queue is None:
            queue = self._queue = deque()
        queue.append(rest)
        self._queued += len(rest) + BUFFER_COST
        Outbox.held += len(rest) + BUFFER_COST
        if self._watcher is None:
            self._watcher = get_hub().loop.io(self._raw.fileno(), 2)  # 2: writable
        self._watcher.start(self.loop_on_writable)
        return True

    def write_eof(self) -> None:
        """Half-close the connection (``shutdown(SHUT_WR)``) once everything queued is written."""
        if self.closed or self._eof:
            return
        self._eof = True
        if not self._queue:
            self._shutdown_write()

    def discard(self) -> None:
        """Drop whatever waits and accept no more writes (the connection is going away)."""
        self.closed = True
        self._queue = None
        Outbox.held -= self._queued
        self._queued = 0
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None

    # -- draining -------------------------------------------------------------------------------

    def loop_on_writable(self) -> None:
        """Event-loop callback: write what the kernel takes now, without blocking."""
        queue = self._queue
        raw = self._raw
        if queue is None:  # discarded meanwhile
            return
        while queue:
            try:
                if self._gather and len(queue) > 1:
                    sent = raw.sendmsg([queue[i] for i in range(min(len(queue), _MAX_IOV))])
                else:
                    sent = raw.send(queue[0])
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            self._queued -= sent
            Outbox.held -= sent
            while sent:
                head = queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    queue.popleft()
                    self._queued -= BUFFER_COST
                    Outbox.held -= BUFFER_COST
                else:
                    queue[0] = memoryview(head)[sent:]
                    return  # the kernel is full; wait for the next writable event
        if self._watcher is not None:
            self._watcher.stop()
        if self._eof:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        shutdown(self._raw, socket.SHUT_WR)

    def _fail(self, exc: OSError) -> None:
        if self.closed:
            return
        self.discard()
        self._on_error(exc)
