"""The engine-neutral half of a server-side WebSocket connection.

A :class:`Connection` owns the socket's write side (an :class:`Outbox`), the
ready state and the close bookkeeping. An engine subclass adds the read
loop, :meth:`Connection.run`, which reports what arrives to a
:class:`ConnectionSink` (the ClusterWS :class:`~clusterws_gevent.websocket.socket.Socket`)
and returns when the connection is closed.
"""
from __future__ import annotations

import socket
import struct
from typing import Any, Callable, Optional, Tuple

from gevent import get_hub

from ..enums import ReadyState
from ..exceptions import ProtocolError
from ..log import Log
from ..net.outbox import Outbox
from ..net.runners import Runners
from ..options import WebSocketOptions
from ..protocol.frames import OP_BINARY, OP_TEXT, encode_close, frame_header

__all__ = ["Connection", "ConnectionSink", "ABNORMAL_CLOSURE", "SLOW_CONSUMER"]

#: Close code reported when the connection ended without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The abort reason of a socket whose client does not read (its outbox is full).
SLOW_CONSUMER = "outbox overflow: the client is not reading"


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
        sock: the gevent socket (plain or TLS).
        options: the WebSocket options (limits and timeouts).
        log: where to log.
        initial: bytes that arrived with the HTTP request, after its headers.
    """

    __slots__ = ("id", "sock", "outbox", "open", "log", "options", "_initial", "_local_close", "_abort_reason",
                 "_aborted", "_close_timer", "_dropped", "_finished")

    #: Bytes asked of each ``recv``.
    recv_size = 65536
    #: The engine can serve a connection parked (``park``), without a greenlet of its own.
    parks = False

    def __init__(self, id: str, sock: Any, options: WebSocketOptions, log: Log, initial: bytes = b"") -> None:
        self.id = id
        self.sock = sock
        self.options = options
        self.log = log
        self.outbox = Outbox(sock, options.max_outbox_size, self._on_overflow, self._on_write_error)
        #: Data frames may be sent (no close frame sent or received, not aborted).
        self.open = True
        self._initial = initial
        self._local_close: Optional[Tuple[int, str]] = None
        self._abort_reason = ""
        self._aborted = False
        self._close_timer: Any = None
        self._dropped = 0
        self._finished = False

    # -- the engine's part ----------------------------------------------------------------------

    def run(self, sink: ConnectionSink) -> None:
        """Read until the connection is closed, reporting to ``sink``; ends with ``sink._on_close``."""
        raise NotImplementedError

    def park(self, sink: ConnectionSink, runners: Runners, on_finished: Callable[[], None]) -> None:
        """Serve the connection without a greenlet of its own (engines whose ``parks`` is true)."""
        raise NotImplementedError

    def _send_close_frame(self, code: int, reason: str) -> None:
        """Write a close frame through the engine, which tracks the close handshake."""
        raise NotImplementedError

    def _engine_state(self) -> int:
        """The engine's ready state, for :attr:`ready_state`."""
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> bool:
        """Send a text message (``payload`` is UTF-8). False when the socket is not open."""
        if not self.open:
            return False
        size = len(payload)
        if size < 126:  # frame_header's common case, inline: every reply and event comes here
            return self.outbox.write(bytes((0x81, size)) + payload)
        return self.outbox.write(frame_header(OP_TEXT, size) + payload)

    def send_binary(self, payload: bytes) -> bool:
        """Send a binary message. False when the socket is not open."""
        if not self.open:
            return False
        return self.outbox.write(frame_header(OP_BINARY, len(payload)) + bytes(payload))

    def send_frame(self, frame: bytes) -> bool:
        """Send an already encoded data frame (shared by many sockets in fan-out)."""
        if not self.open:
            return False
        return self.outbox.write(frame)

    @property
    def ready_state(self) -> ReadyState:
        """0 connecting, 1 open, 2 closing, 3 closed."""
        if self._finished:
            return ReadyState.CLOSED
        state = self._engine_state()
        if self._aborted and state < ReadyState.CLOSING:
            return ReadyState.CLOSING
        return ReadyState(state)

    # -- closing --------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``; a no-op unless open.

        Raises:
            ValueError: the code may not be sent or the reason is too long.
        """
        encode_close(code, reason)  # validate before changing any state
        if not self.open:
            return
        self.open = False
        self._local_close = (code, reason)
        self._send_close_frame(code, reason)
        self.arm_close_timer()

    def terminate(self, reason: str = "terminated") -> None:
        """Drop the TCP connection now, without a close handshake."""
        self.abort(reason)

    def abort(self, reason: str) -> None:
        """Reset the TCP connection; the read loop then ends and reports code 1006."""
        if self._aborted or self._finished:
            return
        self._aborted = True
        self.open = False
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
        if self._close_timer is None and not self._finished:
            self._close_timer = get_hub().loop.timer(self.options.close_timeout)
            self._close_timer.start(self.abort, "close handshake timed out")

    def finish(self, sink: ConnectionSink, code: int, reason: str) -> None:
        """End of the read loop: release everything and report the close once."""
        if self._finished:
            return
        self._finished = True
        self.open = False
        if self._close_timer is not None:
            self._close_timer.close()
            self._close_timer = None
        self.outbox.discard()
        sink._on_close(code, reason)

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
