"""The engine-neutral half of a server-side WebSocket connection, and its one state.

A :class:`Connection` owns the socket's write side (an :class:`Outbox`), the
connection's :class:`State` and the close bookkeeping. An engine subclass adds
:meth:`Connection.read_step`: read what the socket has, hand what it completes
to a :class:`ConnectionSink` (the ClusterWS
:class:`~clusterws_gevent.websocket.socket.Socket`), and say whether to wait for
more bytes, read on, or stop. ``websocket/driver.py`` runs the steps, the same
way whether the socket is parked or read by a greenlet of its own.

The states of a connection (``Connection.state``; ``ready_state`` shows ABORTED as CLOSING):

============  =================================================  ==========  ======================================
state         event                                              next state  what happens
============  =================================================  ==========  ======================================
OPEN          a text or binary message                           OPEN        the sink's ``_on_text``/``_on_binary``
OPEN          a ping / a pong                                    OPEN        a pong is written / ``_on_pong``
OPEN          ``close(code, reason)`` by the app                 CLOSING     close frame sent; the close timer runs
OPEN          the client's close frame                           CLOSING     close echoed, write side shut; timer runs
OPEN          a protocol error (bad frame, UTF-8, size)          CLOSING     close frame with its code (1002, 1007,
                                                                             1009) sent; ``_on_protocol_error``
CLOSING       the client's close frame (after ours)              CLOSING     write side shut; reading goes on
CLOSING       any data                                           CLOSING     read and dropped (the close handshake)
OPEN/CLOSING  ``abort(reason)``: terminate, slow consumer, close  ABORTED     TCP reset (linger 0), outbox dropped
              timer expired, a write failed
OPEN/CLOSING  end of stream, or a read error                     (ended)     reading stops
ABORTED       (anything)                                         (ended)     reading stops at once
(ended)       the driver calls ``end(sink)``                     CLOSED      ``_on_close(code, reason)``, exactly once
============  =================================================  ==========  ======================================

What the close event reports (:meth:`Connection.final_close`): the ``(code, reason)`` we
sent when the server began the close (``close()``, a protocol error: 1002/1007/1009);
the client's when it began; 1006 and why (``connection lost: ...``, the abort's reason)
when the connection ended without a close frame.
"""
from __future__ import annotations

import enum
import socket
import struct
from typing import Any, Optional, Tuple

from gevent import get_hub

from ..enums import ReadyState
from ..exceptions import ProtocolError
from ..log import Log
from ..net.fairness import ReadBudget
from ..net.memory import MessageMemory
from ..net.outbox import Outbox
from ..options import WebSocketOptions
from ..protocol.deflate import DeflateParams, deflate_frame
from ..protocol.frames import OP_BINARY, OP_TEXT, encode_close, frame_header

__all__ = ["Connection", "ConnectionSink", "State", "ServeMode", "OPEN", "CLOSING", "ABORTED", "CLOSED", "WAIT",
           "MORE", "DONE", "ABNORMAL_CLOSURE", "SLOW_CONSUMER"]

#: Close code reported when the connection ended without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The abort reason of a socket whose client does not read (its outbox is full).
SLOW_CONSUMER = "outbox overflow: the client is not reading"


class State(enum.IntEnum):
    """Where a connection is in its life (the table in the module docstring)."""

    #: Data frames flow both ways.
    OPEN = 1
    #: A close frame was sent or received (or a protocol error failed the connection):
    #: no data frame is sent any more, and reading goes on until the end of the stream.
    CLOSING = 2
    #: Finished: the close event was reported; nothing happens any more.
    CLOSED = 3
    #: The TCP connection is being reset: reading stops at once.
    ABORTED = 4


OPEN, CLOSING, CLOSED, ABORTED = State.OPEN, State.CLOSING, State.CLOSED, State.ABORTED


class ServeMode(enum.Enum):
    """How an engine's connections wait for bytes between read steps (``websocket/driver.py``)."""

    #: No greenlet while idle: a read watcher hands the readable socket to a runner greenlet
    #: (the engine's read steps never block).
    PARKED = "parked"
    #: The handler's greenlet reads, blocking, for the connection's whole life.
    GREENLET = "greenlet"

#: What a read step asks of its driver: wait until the socket is readable...
WAIT = 0
#: ... read again at once (a full read: the kernel may hold more)...
MORE = 1
#: ... or stop reading: the connection ended (the driver then calls ``end``).
DONE = 2


class ConnectionSink:
    """What a connection reports to (implemented by the ClusterWS Socket)."""

    __slots__ = ()

    def _on_text(self, text: str) -> None:
        """A complete text message arrived."""

    def _on_binary(self, data: bytes) -> None:
        """A complete binary message arrived."""

    def _on_pong(self) -> None:
        """A protocol-level pong arrived."""

    def _on_protocol_error(self, error: ProtocolError) -> None:
        """The client broke the protocol; the connection is closing with ``error.close_code``."""

    def _on_close(self, code: int, reason: str) -> None:
        """The connection is closed; called exactly once, last."""


class Connection:
    """One server-side WebSocket after the opening handshake.

    Args:
        id: the socket id, for logs.
        sock: the connection's socket: a non-blocking C-level socket or a
            :class:`~clusterws_gevent.net.tls_socket.TLSSocket` (parked engines), or
            the handler's gevent socket (an engine read by a greenlet).
        options: the WebSocket options (limits and timeouts).
        log: where to log.
        initial: bytes that arrived with the HTTP request, after its headers.
    """

    __slots__ = ("id", "sock", "outbox", "state", "log", "options", "sink", "scope", "watcher", "memory",
                 "deflate", "_initial", "_local_close", "_abort_reason", "_close_timer", "_dropped")

    #: The engine reads compressed messages: permessage-deflate may be negotiated.
    supports_deflate = False

    #: Bytes asked of each ``recv``.
    recv_size = 65536
    #: How the engine's connections are served: PARKED when ``read_step`` never blocks.
    serve_mode = ServeMode.GREENLET

    def __init__(self, id: str, sock: Any, options: WebSocketOptions, log: Log, initial: bytes = b"") -> None:
        self.id = id
        self.sock = sock
        self.options = options
        self.log = log
        self.outbox = Outbox(sock, options.max_outbox_size, self._on_overflow, self._on_write_error)
        #: Where the connection is in its life (:class:`State`).
        self.state = OPEN
        #: Where it reports what arrives (set by the driver).
        self.sink: Optional[ConnectionSink] = None
        #: The app's context its messages are handled in (a Flask request context), or None.
        self.scope: Any = None
        #: The event-loop watcher of a parked connection's socket (the driver's).
        self.watcher: Any = None
        #: The worker's budget for incoming messages (``net/memory.py``), or None: unbounded.
        self.memory: Optional[MessageMemory] = None
        #: What permessage-deflate agreed (``enable_deflate``), or None: sent and read uncompressed.
        self.deflate: Optional[DeflateParams] = None
        self._initial = initial
        self._local_close: Optional[Tuple[int, str]] = None
        self._abort_reason = ""
        self._close_timer: Any = None
        self._dropped = 0

    # -- the engine's part ----------------------------------------------------------------------

    def read_step(self, sink: ConnectionSink, budget: ReadBudget) -> int:
        """Read what the socket has, handle what it completes; WAIT, MORE or DONE.

        Spends ``budget`` (bytes and messages), which yields to the event loop when spent.
        """
        raise NotImplementedError

    def close_frames(self) -> Tuple[Optional[Tuple[int, str]], Optional[Tuple[int, str]], bool]:
        """(close received, close sent, received first) as the engine saw the close handshake."""
        raise NotImplementedError

    def _send_close_frame(self, code: int, reason: str) -> None:
        """Write a close frame through the engine, which tracks the close handshake."""
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------------------

    def enable_deflate(self, params: DeflateParams) -> None:
        """permessage-deflate was agreed in the handshake: read and send compressed messages."""
        self.deflate = params

    def send_text(self, payload: bytes) -> bool:
        """Send a text message (``payload`` is UTF-8). False when the socket is not open."""
        if self.state is not OPEN:
            return False
        size = len(payload)
        deflate = self.deflate
        if deflate is not None and size >= deflate.threshold:
            return self.outbox.write(deflate_frame(OP_TEXT, payload, deflate))
        if size < 126:  # frame_header's common case, inline: every reply and event comes here
            return self.outbox.write(bytes((0x81, size)) + payload)
        return self.outbox.write(frame_header(OP_TEXT, size) + payload)

    def send_binary(self, payload: bytes) -> bool:
        """Send a binary message. False when the socket is not open."""
        if self.state is not OPEN:
            return False
        deflate = self.deflate
        if deflate is not None and len(payload) >= deflate.threshold:
            return self.outbox.write(deflate_frame(OP_BINARY, bytes(payload), deflate))
        return self.outbox.write(frame_header(OP_BINARY, len(payload)) + bytes(payload))

    def send_frame(self, frame: bytes) -> bool:
        """Send an already encoded data frame (shared by many sockets in fan-out)."""
        if self.state is not OPEN:
            return False
        return self.outbox.write(frame)

    @property
    def ready_state(self) -> ReadyState:
        """0 connecting, 1 open, 2 closing, 3 closed."""
        state = self.state
        return ReadyState.CLOSING if state is ABORTED else ReadyState(int(state))

    # -- closing --------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``; a no-op unless open.

        Raises:
            ValueError: the code may not be sent or the reason is too long.
        """
        encode_close(code, reason)  # validate before changing any state
        if self.state is not OPEN:
            return
        self.state = CLOSING
        self._local_close = (code, reason)
        self._send_close_frame(code, reason)
        self.arm_close_timer()

    def terminate(self, reason: str = "terminated") -> None:
        """Drop the TCP connection now, without a close handshake."""
        self.abort(reason)

    def abort(self, reason: str) -> None:
        """Reset the TCP connection; reading then ends and the close event reports 1006."""
        if self.state is ABORTED or self.state is CLOSED:
            return
        self.state = ABORTED
        self._abort_reason = reason
        self.outbox.discard()
        try:
            # linger 0: the final close() resets the connection and frees the kernel's
            # buffers at once, rather than keeping unread data for a client that is gone.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def arm_close_timer(self) -> None:
        """Abort unless the connection is closed within ``close_timeout`` seconds."""
        if self._close_timer is None and self.state is not CLOSED:
            self._close_timer = get_hub().loop.timer(self.options.close_timeout)
            self._close_timer.start(self.loop_close_timed_out)

    def loop_close_timed_out(self) -> None:
        """Event-loop callback of the close timer (never blocks: ``abort`` only shuts the socket)."""
        self.abort("close handshake timed out")

    def lost(self, exc: OSError) -> None:
        """Reading failed: the connection is gone (the close event says why, with 1006)."""
        self._abort_reason = self._abort_reason or f"connection lost: {exc.strerror or exc}"

    def end(self, sink: ConnectionSink) -> None:
        """Reading ended: release everything and report the close, exactly once (-> CLOSED)."""
        if self.state is CLOSED:
            return
        code, reason = self.final_close(*self.close_frames())
        self.state = CLOSED
        self._release()
        if self._close_timer is not None:
            self._close_timer.close()
            self._close_timer = None
        self.outbox.discard()
        sink._on_close(code, reason)

    def _release(self) -> None:
        """The connection ended: give back what the engine still holds (a partial message)."""

    def final_close(self, received: Optional[Tuple[int, str]], sent: Optional[Tuple[int, str]],
                    received_first: bool) -> Tuple[int, str]:
        """The ``(code, reason)`` the close event reports: what we sent when we
        started the close, what the client sent when it did, 1006 otherwise."""
        if self._local_close is not None:
            return self._local_close
        if received is not None and received_first:
            return received
        if sent is not None:
            return sent
        if received is not None:
            return received
        return ABNORMAL_CLOSURE, self._abort_reason or "connection lost"

    # -- outbox callbacks -----------------------------------------------------------------------

    def _on_overflow(self, waiting: int, refused: int) -> None:
        if self.options.outbox_overflow == "drop":
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                self.log.warning("socket %s: outbox full (%d bytes waiting): dropped %d message(s) so far "
                                 "for a client that reads too slowly", self.id, waiting, self._dropped)
            return
        self.log.warning("socket %s: outbox full (%d bytes waiting, %d more refused): the client is not "
                         "reading; closing the connection", self.id, waiting, refused)
        self.abort(SLOW_CONSUMER)

    @property
    def dropped(self) -> int:
        """Messages dropped for this client (``outbox_overflow="drop"``)."""
        return self._dropped

    def _on_write_error(self, exc: OSError) -> None:
        self.abort(f"write failed: {exc.strerror or exc}")
