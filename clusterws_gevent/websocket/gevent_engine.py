"""The compatibility engine: gevent-websocket 0.10.1's frame reader.

The only module that imports ``geventwebsocket``. It reads frames and
assembles messages with gevent-websocket (its pure-Python unmasking and UTF-8
validation), behind the same :class:`Connection` as the default engine, so
the socket API, limits and close codes are the same. What this adapter adds
to 0.10.1: the ``max_message_size`` limit (checked from each frame header,
before the payload is read), refusal of unmasked client frames, and close
frames that carry the code and reason (0.10.1 drops the code).

Known limits, measured: unmasking is byte by byte (a 1 MiB message costs
about 250 ms of CPU), so this engine is 10-40x slower on large messages and
about 2x slower on small ones than ``builtin``; the connection keeps its 8 KiB
read buffer for its whole life.
"""
from __future__ import annotations

import struct
from typing import Any, Optional, Tuple

from geventwebsocket.exceptions import ProtocolError as GwsProtocolError
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Header, WebSocket

from ..exceptions import InvalidData, MessageTooBig, ProtocolError
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..options import WebSocketOptions
from ..protocol.closing import as_protocol_error, close_for
from ..protocol.frames import OP_CLOSE, OP_PONG, encode_close, encode_frame, is_valid_close_code
from .connection import ABORTED, CLOSING, DONE, MORE, OPEN, Connection, ConnectionSink

__all__ = ["GeventWebSocketConnection"]


class _CloseReceived(Exception):
    """The client's close frame was read."""


class _Stream:
    """The stream gevent-websocket reads from; its writes go through our outbox."""

    __slots__ = ("read", "write")

    def __init__(self, read: Any, write: Any) -> None:
        self.read = read
        self.write = write


class _Reader(WebSocket):  # type: ignore[misc]
    """gevent-websocket's WebSocket, reading only; writes go through our Connection."""

    def __init__(self, connection: GeventWebSocketConnection, read: Any, max_size: int) -> None:
        super().__init__({}, _Stream(read, connection.outbox.write), None)
        self.connection = connection
        self.sink: Optional[ConnectionSink] = None
        self.max_size = max_size
        self.message_size = 0
        self.close_rcvd: Optional[Tuple[int, str]] = None
        self.failed = False  # the stream broke a rule: nothing more is read as frames
        self.budget = ReadBudget()  # the driver's, set at each step

    def read_frame(self) -> Tuple[Any, bytes]:
        # read_message loops over frames (fragments, pings) itself: the turn is taken per frame
        self.budget.spend(MESSAGE_COST)
        header = Header.decode_header(self.stream)
        if header.flags:
            raise GwsProtocolError("reserved bits set without a negotiated extension")
        if not header.mask:
            raise GwsProtocolError("unmasked frame from a client (RFC 6455 §5.1)")
        if header.opcode in (1, 2):
            self.message_size = header.length
        elif header.opcode == 0:
            self.message_size += header.length
        if header.opcode < 8 and self.message_size > self.max_size:
            raise MessageTooBig(f"message over max_message_size ({self.max_size} bytes)")
        payload = self.raw_read(header.length) if header.length else b""
        if len(payload) != header.length:
            raise WebSocketError("unexpected end of stream in a frame")
        self.budget.spend(header.length)
        return header, bytes(header.unmask_payload(payload)) if header.length else b""

    def handle_ping(self, header: Any, payload: bytes) -> None:
        self.connection.outbox.write(encode_frame(OP_PONG, payload))

    def handle_pong(self, header: Any, payload: bytes) -> None:
        if self.sink is not None:
            self.sink._on_pong()

    def handle_close(self, header: Any, payload: bytes) -> None:
        if not payload:
            self.close_rcvd = (1005, "")
        elif len(payload) < 2:
            raise GwsProtocolError("close frame with a one-byte payload")
        else:
            code = struct.unpack("!H", payload[:2])[0]
            if not is_valid_close_code(code):
                raise GwsProtocolError(f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidData("invalid UTF-8 in a close reason") from None
            self.close_rcvd = (code, reason)
        raise _CloseReceived()

    def close(self, code: int = 1000, message: bytes = b"") -> None:
        """Closing is the Connection's job (0.10.1's close drops the code)."""


class GeventWebSocketConnection(Connection):
    """A connection read by gevent-websocket (the ``gevent-websocket`` engine): its read
    steps block (one message each), so its sockets are served by a greenlet each
    (``ServeMode.GREENLET``).

    Args:
        rfile: the request's buffered reader, which may hold the first frames.
    """

    __slots__ = ("_reader", "_rfile", "_close_sent")

    needs_rfile = True

    def __init__(self, id: str, sock: Any, options: WebSocketOptions, log: Log, initial: bytes = b"",
                 rfile: Any = None) -> None:
        super().__init__(id, sock, options, log, initial)
        self._rfile = rfile if rfile is not None else sock.makefile("rb")
        self._reader = _Reader(self, self._rfile.read, options.max_message_size)
        self._close_sent: Optional[Tuple[int, str]] = None

    def _send_close_frame(self, code: int, reason: str) -> None:
        if self._close_sent is None:
            self._close_sent = (code, reason)
            self.outbox.write(encode_close(code, reason))

    def close_frames(self) -> Tuple[Optional[Tuple[int, str]], Optional[Tuple[int, str]], bool]:
        received = self._reader.close_rcvd
        return received, self._close_sent, received is not None and self._local_close is None

    def read_step(self, sink: ConnectionSink, budget: ReadBudget) -> int:
        """Read one message (blocking) and hand it over; once closing, read until the end."""
        if self.state is ABORTED:
            return DONE
        reader = self._reader
        reader.sink = sink
        reader.budget = budget
        try:
            if reader.close_rcvd is not None or reader.failed:
                return self._discard(budget)
            try:
                message = reader.read_message()
            except _CloseReceived:
                self._on_close_frame()
                return MORE
            except (ProtocolError, UnicodeError, GwsProtocolError) as exc:
                error = as_protocol_error(exc)
                assert error is not None  # none of these is the end of the stream
                self._fail(error, sink)
                return MORE
        except OSError as exc:  # WebSocketError (end of stream) is an OSError too
            self.lost(exc)
            return DONE
        if message is not None and self.state is OPEN:
            if isinstance(message, str):
                sink._on_text(message)
            else:
                sink._on_binary(bytes(message))
        return MORE

    def _on_close_frame(self) -> None:
        received = self._reader.close_rcvd
        if self.state is OPEN:
            self.state = CLOSING
        if self._close_sent is None and received is not None:
            code, reason = received
            # Echo the client's code (an empty close is echoed empty, RFC 6455 §5.5.1).
            self._close_sent = received
            self.outbox.write(encode_close(code, reason) if code != 1005 else encode_frame(OP_CLOSE, b""))
        self.outbox.write_eof()
        self.arm_close_timer()

    def _fail(self, error: ProtocolError, sink: ConnectionSink) -> None:
        self._reader.failed = True
        if self.state is OPEN:
            self.state = CLOSING
        if self._close_sent is None:
            self._close_sent = close_for(error)
            self.outbox.write(encode_close(*self._close_sent))
        self.outbox.write_eof()
        self.arm_close_timer()
        sink._on_protocol_error(error)

    def _discard(self, budget: ReadBudget) -> int:
        """After the close: read and drop until the client closes TCP (bounded by the close timer)."""
        data = self._rfile.read1(65536)
        if not data:
            return DONE
        budget.spend(len(data))
        return MORE
