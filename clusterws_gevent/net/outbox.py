"""A bounded, ordered, non-blocking writer for one connection.

``write()`` never blocks and never switches greenlets, so a frame is always
written whole and in order, whichever greenlet writes: frames from several
greenlets never interleave, and a publisher never waits for a slow reader.

On a plain TCP socket, a write first tries one non-blocking ``send`` (the
common case: the kernel takes it all, one system call). What the kernel does
not take waits in the outbox, and an event-loop watcher writes it out when
the socket becomes writable: no greenlet per slow socket. A TLS socket cannot
be written that way, so its outbox is drained by a greenlet using gevent's
``sendall``.

When the waiting bytes would pass ``limit`` (a frame larger than ``limit`` is
refused even when nothing waits), the outbox calls ``on_overflow`` (the
connection closes the socket or drops the message) instead of growing: memory
stays bounded whatever the client does.
"""
from __future__ import annotations

import _socket
import socket
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Union

import gevent
from gevent import get_hub

from .sockets import shutdown

__all__ = ["Outbox"]

Buffer = Union[bytes, memoryview]

#: Buffers given to one ``sendmsg`` when draining (IOV_MAX is 1024 on Linux).
_MAX_IOV = 256


class Outbox:
    """Writes frames to ``sock`` in order, holding at most ``limit`` bytes back.

    Args:
        sock: the connection's gevent socket (plain or TLS).
        limit: bytes that may wait beyond the kernel's buffer.
        on_overflow: called with the number of bytes waiting and the size of the
            refused frame, when a frame would pass ``limit``.
        on_error: called once with the OSError that broke the connection.
    """

    __slots__ = ("_sock", "_raw", "_queue", "_queued", "_limit", "_on_overflow", "_on_error",
                 "_watcher", "_drainer", "_eof", "closed")

    def __init__(self, sock: Any, limit: int, on_overflow: Callable[[int, int], None],
                 on_error: Callable[[OSError], None]) -> None:
        self._sock = sock
        # gevent keeps the non-blocking C-level socket of a plain TCP socket in _sock
        # (checked against _socket.socket: socket.socket may be gevent's own class
        # after monkey-patching). A TLS socket has one too, but writing to it would
        # bypass TLS: it is written through its own methods (it has an _sslobj).
        # A parked connection's socket is that C-level socket itself.
        raw = sock if type(sock) is _socket.socket else getattr(sock, "_sock", None)
        plain = isinstance(raw, _socket.socket) and not hasattr(sock, "_sslobj")
        self._raw: Optional[Any] = raw if plain else None
        self._queue: Optional[Deque[Buffer]] = None  # made when the kernel first refuses bytes
        self._queued = 0
        self._limit = limit
        self._on_overflow = on_overflow
        self._on_error = on_error
        self._watcher: Any = None
        self._drainer: Any = None
        self._eof = False
        #: No more writes are accepted: the outbox was discarded or a write failed.
        self.closed = False

    @property
    def queued(self) -> int:
        """Bytes accepted but not yet taken by the kernel."""
        return self._queued

    def write(self, data: bytes) -> bool:
        """Queue ``data`` (a whole frame) after everything written before.

        Returns:
            False when the outbox is closed or full (then ``on_overflow`` ran).
        """
        if self.closed or self._eof:
            return False
        if self._queued + len(data) > self._limit:
            # Checked before any byte is sent, even to an empty outbox: a frame is sent
            # whole or not at all, and no frame may make the outbox pass its limit.
            self._on_overflow(self._queued, len(data))
            return False
        queue = self._queue
        if queue:
            queue.append(data)
            self._queued += len(data)
            return True
        raw = self._raw
        if raw is not None:
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return False
            if sent == len(data):
                return True
            rest: Buffer = memoryview(data)[sent:] if sent else data
        else:
            rest = data
        if queue is None:
            queue = self._queue = deque()
        queue.append(rest)
        self._queued += len(rest)
        self._start_draining()
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
        self._queued = 0
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
        drainer, self._drainer = self._drainer, None
        if drainer is not None and drainer is not gevent.getcurrent():
            gevent.kill(drainer)

    # -- draining -------------------------------------------------------------------------------

    def _start_draining(self) -> None:
        if self._raw is not None:
            if self._watcher is None:
                self._watcher = get_hub().loop.io(self._raw.fileno(), 2)  # 2: writable
            self._watcher.start(self._on_writable)
        elif self._drainer is None:
            self._drainer = gevent.spawn_raw(self._drain_tls)

    def _on_writable(self) -> None:
        """Event-loop callback: write what the kernel takes now, without blocking."""
        queue = self._queue
        raw = self._raw
        if queue is None or raw is None:  # discarded meanwhile
            return
        while queue:
            buffers: List[Buffer] = [queue[i] for i in range(min(len(queue), _MAX_IOV))]
            try:
                sent = raw.sendmsg(buffers) if len(buffers) > 1 else raw.send(buffers[0])
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            self._queued -= sent
            while sent:
                head = queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    queue.popleft()
                else:
                    queue[0] = memoryview(head)[sent:]
                    return  # the kernel is full; wait for the next writable event
        if self._watcher is not None:
            self._watcher.stop()
        if self._eof:
            self._shutdown_write()

    def _drain_tls(self) -> None:
        queue = self._queue
        try:
            while queue and queue is self._queue:  # not discarded meanwhile
                head = queue[0]
                self._sock.sendall(head)
                if queue is self._queue:
                    queue.popleft()
                    self._queued -= len(head)
            if self._eof and not self.closed:
                self._shutdown_write()
        except OSError as exc:
            self._fail(exc)
        finally:
            if self._drainer is gevent.getcurrent():
                self._drainer = None

    def _shutdown_write(self) -> None:
        shutdown(self._sock, socket.SHUT_WR)

    def _fail(self, exc: OSError) -> None:
        if self.closed:
            return
        self.discard()
        self._on_error(exc)
