"""Reading the client's frames: data frames here, everything else to a core.

:class:`ClientFrameReader` is the hot path of the default engine. It parses
data frames (text, binary, continuation) itself: header, size limit, order
of fragments, and unmasking as the payload arrives, so a large frame is never
held masked and a text message can be checked as it comes. Every other frame
(ping, pong, close) is handed over whole, and any frame it does not read
(reserved bits or opcodes, a missing mask) hands over the rest of the stream,
to a full RFC 6455 implementation (the engine uses websockets'
``ServerProtocol``), which answers pings, runs the close handshake and fails
the connection with the right code.
"""
from __future__ import annotations

from typing import Any, List, Tuple

from ..exceptions import MessageTooBig, ProtocolError
from .frames import OP_BINARY, OP_CONT, OP_TEXT
from .mask import apply_mask, rotate_mask

__all__ = ["ClientFrameReader", "CORE", "ERROR", "TEXT", "BINARY", "CONT"]

TEXT = OP_TEXT
BINARY = OP_BINARY
#: A later chunk of the message that a TEXT or BINARY event started.
CONT = OP_CONT
#: Bytes for the core: a whole control frame, or the rest of the stream.
CORE = -1
#: The stream broke a rule; the event's payload is the exception. Nothing follows.
ERROR = -2

#: ``(kind, payload, message_complete)``; see :meth:`ClientFrameReader.feed`.
Event = Tuple[int, Any, bool]


class ClientFrameReader:
    """Parses masked client frames as bytes arrive.

    Args:
        max_message_size: the largest message; a larger one is an ERROR
            (:class:`MessageTooBig`) as soon as its header announces it.
    """

    __slots__ = ("max_message_size", "passthrough", "deflate", "compressed", "_rest", "_left", "_mask", "_offset",
                 "_fin", "_opcode", "_in_message", "_started", "_message_size")

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        #: Everything from now on goes to the core (after a close, an error or a frame not read here).
        self.passthrough = False
        #: permessage-deflate was negotiated: the first frame of a message may set RSV1.
        self.deflate = False
        #: The current message's first frame set RSV1: its chunks are compressed (RFC 7692).
        self.compressed = False
        self._rest = b""  # an incomplete header or control frame, waiting for more bytes
        self._left = 0  # payload bytes of the current data frame still to come
        self._mask = b""
        self._offset = 0  # payload bytes of the current data frame seen so far
        self._fin = False
        self._opcode = 0  # of the current message: TEXT or BINARY
        self._in_message = False  # a fragmented message is open
        self._started = False  # its first chunk was reported
        self._message_size = 0

    def feed(self, data: bytes) -> List[Event]:
        """Parse ``data``; return what it completes, in stream order.

        Events are ``(kind, payload, message_complete)``:

        - ``(TEXT|BINARY, chunk, done)``: a new message begins with ``chunk`` (unmasked);
          ``done`` when the message is complete with it (the common case: one small frame);
        - ``(CONT, chunk, done)``: the next chunk of that message;
        - ``(CORE, raw_bytes, False)``: bytes for the core (a whole control frame,
          or, in passthrough, everything);
        - ``(ERROR, exception, False)``: a :class:`ProtocolError`; the reader is in passthrough after it.
        """
        if self.passthrough:
            return [(CORE, data, False)]
        # The common case, one whole small masked frame of a whole message in the chunk:
        # a third of the cost of the general path below (which it must agree with).
        size = len(data)
        if 6 < size < 132 and not (self._rest or self._left or self._in_message):
            first = data[0]
            if (first == 0x81 or first == 0x82 or (self.deflate and (first == 0xC1 or first == 0xC2))) and (
                    data[1] == 0x7A + size and size - 6 <= self.max_message_size):
                self.compressed = first > 0xC0  # RSV1: a compressed message
                return [(first & 0x0F, apply_mask(data[6:], data[2:6]), True)]
        if self._rest:
            data = self._rest + data
            self._rest = b""
        events: List[Event] = []
        size = len(data)
        pos = 0
        while pos < size:
            if self._left:
                take = min(self._left, size - pos)
                chunk = apply_mask(data[pos : pos + take], rotate_mask(self._mask, self._offset))
                pos += take
                self._left -= take
                self._offset += take
                self._emit(events, chunk)
                continue
            if size - pos < 2:
                self._rest = data[pos:]
                break
            first, second = data[pos], data[pos + 1]
            opcode = first & 0x0F
            length = second & 0x7F
            reserved = first & 0x70
            if reserved and not (reserved == 0x40 and self.deflate and 0 < opcode < 3):
                # (RSV1 starts a compressed message, when negotiated; on a continuation frame it is an error)
                reserved = -1
            if reserved < 0 or not second & 0x80 or (opcode > 2 and opcode not in (8, 9, 10)) or (
                    opcode >= 8 and (length > 125 or not first & 0x80)):
                # Reserved bits or opcode, no mask, a bad control frame: the core fails it.
                self.passthrough = True
                events.append((CORE, data[pos:], False))
                return events
            header = 6  # 2 + 4 bytes of mask (checked above)
            if length == 126:
                header = 8
                if size - pos >= 4:
                    length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                header = 14
                if size - pos >= 10:
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if size - pos < header:
                self._rest = data[pos:]
                break
            if opcode >= 8:
                end = pos + header + length
                if end > size:
                    self._rest = data[pos:]
                    break
                events.append((CORE, data[pos:end], False))
                pos = end
                continue
            error = self._begin_frame(opcode, length, bool(first & 0x80), data[pos + header - 4 : pos + header],
                                      reserved == 0x40)
            if error is not None:
                self.passthrough = True
                events.append((ERROR, error, False))
                return events
            pos += header
            if not length:
                self._emit(events, b"")
        return events

    def _begin_frame(self, opcode: int, length: int, fin: bool, mask: bytes, compressed: bool) -> Any:
        if opcode == OP_CONT:
            if not self._in_message:
                return ProtocolError("unexpected continuation frame")
            self._message_size += length
        else:
            if self._in_message:
                return ProtocolError("expected a continuation frame")
            self._opcode = opcode
            self.compressed = compressed
            self._in_message = True
            self._started = False
            self._message_size = length
        if self._message_size > self.max_message_size:
            return MessageTooBig(f"message over max_message_size ({self.max_message_size} bytes)")
        self._left = length
        self._mask = mask
        self._offset = 0
        self._fin = fin
        return None

    def _emit(self, events: List[Event], chunk: bytes) -> None:
        done = not self._left and self._fin
        kind = CONT if self._started else self._opcode
        self._started = True
        if done:
            self._in_message = False
        if chunk or done or kind != CONT:
            events.append((kind, chunk, done))
