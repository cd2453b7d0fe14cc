"""The default engine: our data-frame reader and websockets' sans-I/O core, read in
non-blocking steps (``read_step``), so that every socket of it is parked between
reads, with no greenlet of its own (``websocket/driver.py``).

Data frames, the hot path, are read by
:class:`~clusterws_gevent.protocol.reader.ClientFrameReader` (header, size
limit, fragment order, unmasking in C as the payload arrives). Every other
frame goes, whole, to ``websockets.server.ServerProtocol``, which answers
pings, runs the close handshake, and fails the connection with the right code
for anything irregular. This module assembles messages, checks text is UTF-8
chunk by chunk (so an invalid message fails fast, even inside one frame),
and writes what the core produces.

Why the split, measured (``README.md``, Performance): the core's parser costs
about 2.8 µs per frame, which made Autobahn's 9.3/9.4 (65,536-fragment
messages) slower than Node.js ``ws``; the reader costs under 1 µs.

Ordering: the events of a chunk are handled in stream order, and the core's
output is written right after each frame it was given, so a pong or a close
echo is never written before the replies to the messages that came before it.
"""
from __future__ import annotations

import codecs
import logging
from typing import Any, Callable, Optional, Tuple

from websockets.frames import Frame, Opcode
from websockets.protocol import CLOSED as CORE_CLOSED
from websockets.protocol import OPEN as CORE_OPEN
from websockets.server import ServerProtocol

from ..exceptions import InvalidData, OverCapacity, ProtocolError
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.sockets import unsent_bytes
from ..options import WebSocketOptions
from ..protocol.closing import as_protocol_error, close_for
from ..protocol.deflate import DeflateParams, Inflater
from ..protocol.mask import apply_mask
from ..protocol.reader import BINARY, CONT, CORE, ERROR, TEXT, ClientFrameReader
from .connection import ABORTED, CLOSING, DONE, MORE, OPEN, SLOW_CONSUMER, WAIT, Connection, ConnectionSink, ServeMode

__all__ = ["BuiltinConnection"]

_PONG, _CLOSE = Opcode.PONG, Opcode.CLOSE
_PING_OPCODE, _PONG_OPCODE = 9, 10
#: Every this many pings, the bytes waiting unread in the kernel for the client are checked...
UNREAD_PINGS = 256
#: ... and past this many, a client that keeps pinging is a slow consumer.
UNREAD_BYTES = 1 << 20
_utf8_decoder: Callable[[], Any] = codecs.getincrementaldecoder("utf-8")
#: An event the engine took into the message it assembles (a compressed one): nothing more to do.
TAKEN = -3
#: A compressed message whole in one frame of at most this many bytes is inflated at once...
SMALL_DEFLATED = 4096
#: ... and handed over as an uncompressed one when it inflates to at most this many (the most an
#: uncompressed whole frame can be: one read); else it is held in ``memory`` as it is assembled.
SMALL_INFLATED = 65536


class _QuietLog:
    """The core's logger: drops its per-connection info lines, keeps its errors."""

    def __init__(self, log: Log) -> None:
        self._log = log

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's name
        return level >= logging.ERROR

    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass

    info = debug

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.warning("websockets core: " + msg, *args)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.error("websockets core: " + msg, *args)


class BuiltinConnection(Connection):
    """A connection of the ``builtin`` engine."""

    serve_mode = ServeMode.PARKED
    supports_deflate = True

    __slots__ = ("_proto", "_reader", "_parts", "_decoder", "_binary", "_held", "_pings", "_inflater")

    def __init__(self, id: str, sock: Any, options: WebSocketOptions, log: Log, initial: bytes = b"") -> None:
        super().__init__(id, sock, options, log, initial)
        # The core sees only control frames; it is made when the first one comes, or
        # at the close: an idle socket (app-level pings are data frames) never needs it.
        self._proto: Optional[ServerProtocol] = None
        self._reader = ClientFrameReader(options.max_message_size)
        self._parts: Optional[bytearray] = None  # the message being assembled
        self._decoder: Any = None
        self._binary = False
        self._held = 0  # bytes of the message being assembled, reserved in ``memory``
        self._pings = 0  # pings answered
        self._inflater: Optional[Inflater] = None  # of the compressed message being read

    def enable_deflate(self, params: DeflateParams) -> None:
        super().enable_deflate(params)
        self._reader.deflate = True

    def _core(self) -> ServerProtocol:
        """The websockets core, made on first use."""
        if self._proto is None:
            # max_size bounds what the core buffers once it reads every byte (after a close)
            self._proto = ServerProtocol(state=CORE_OPEN, max_size=self.options.max_message_size,
                                         logger=_QuietLog(self.log))  # type: ignore[arg-type]
        return self._proto

    def _send_close_frame(self, code: int, reason: str) -> None:
        proto = self._core()
        if proto.state is CORE_OPEN:  # else a close is already under way
            proto.send_close(code, reason)
        self._flush_core()

    def read_step(self, sink: ConnectionSink, budget: ReadBudget) -> int:
        """Read what the kernel has (the request's leftover bytes first), handle its frames."""
        data = self._initial
        if data:
            self._initial = b""
        else:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                return WAIT
            except OSError as exc:
                self.lost(exc)
                return DONE
            if not data:
                self._end_of_stream()
                return DONE
            if not self._handle(data, sink, budget):
                return DONE
            # A short read: the kernel had no more (a TLSSocket reads until OpenSSL has none either).
            return WAIT if len(data) < self.recv_size else MORE
        return MORE if self._handle(data, sink, budget) else DONE

    # -- the read loop's parts --------------------------------------------------------------------

    def _handle(self, data: bytes, sink: ConnectionSink, budget: ReadBudget) -> bool:
        """Handle the frames of ``data``; False once nothing more is to be read."""
        budget.spend(len(data))
        reader = self._reader
        for kind, payload, done in reader.feed(data):
            if reader.compressed and kind in (TEXT, BINARY):  # its first frame set RSV1: deflated
                kind, payload = self._inflate_first(kind, payload, done, sink, budget)
                if kind == ERROR:
                    break
            if kind == TEXT:
                if done:
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        self._fail(InvalidData(f"invalid UTF-8 in a text message at byte {exc.start}"), sink)
                        break
                    if self.state is OPEN:
                        sink._on_text(text)
                elif not self._begin(False, payload, sink):
                    break
            elif kind == BINARY:
                if done:
                    if self.state is OPEN:
                        sink._on_binary(payload)
                elif not self._begin(True, payload, sink):
                    break
            elif kind == CONT:
                if not (self._add(payload, done, sink) if self._inflater is None else
                        self._inflate(payload, done, sink, budget)):
                    break
            elif kind == CORE:
                # one whole valid control frame, unless the reader gave up (passthrough: the core fails it)
                opcode = -1 if self._reader.passthrough or self.state is not OPEN else payload[0] & 0x0F
                if opcode == _PING_OPCODE:
                    self._answer_ping(payload)
                elif opcode == _PONG_OPCODE:
                    sink._on_pong()
                else:  # a close, a broken frame, or anything once the close handshake began
                    self._to_core(payload, sink)
            elif kind == ERROR:
                self._fail(payload, sink)
                break
            if self.state is ABORTED:
                break
            if done or kind == CORE:  # a message (or control frame) handled; a chunk costs its bytes
                budget.left -= MESSAGE_COST  # ReadBudget.spend, inline: with the header below, 0.3 us
                if budget.left <= 0:  # less user CPU per echo round trip (3 runs, /proc/PID/stat)
                    budget.spend(0)
        return self.state is not ABORTED and (self._proto is None or self._proto.state is not CORE_CLOSED)

    def _end_of_stream(self) -> None:
        if self._proto is not None:  # without a core, no close handshake began
            self._proto.receive_eof()
            self._flush_core()

    def close_frames(self) -> Tuple[Optional[Tuple[int, str]], Optional[Tuple[int, str]], bool]:
        proto = self._proto
        if proto is None:
            return None, None, False
        received, sent = proto.close_rcvd, proto.close_sent
        return ((received.code, received.reason) if received is not None else None,
                (sent.code, sent.reason) if sent is not None else None, bool(proto.close_rcvd_then_sent))

    # -- messages ---------------------------------------------------------------------------------

    def _begin(self, binary: bool, chunk: bytes, sink: ConnectionSink, inflater: Optional[Inflater] = None) -> bool:
        """The first chunk of a message that continues in later chunks (or is compressed)."""
        self._binary = binary
        self._parts = bytearray()
        self._decoder = None if binary else _utf8_decoder()
        self._inflater = inflater
        return self._add(chunk, False, sink)

    def _inflate_first(self, kind: int, payload: bytes, done: bool, sink: ConnectionSink,
                       budget: ReadBudget) -> Tuple[int, bytes]:
        """The first chunk of a compressed message. A small one whole in its frame (the common
        case) is inflated at once and comes back as ``(kind, inflated)``, to be handed over as an
        uncompressed one; a larger one, or one in several frames, is assembled like a fragmented
        message (held in ``memory``): ``(TAKEN, b"")``. ``(ERROR, b"")``: it failed the connection."""
        binary = kind == BINARY
        if done and len(payload) <= SMALL_DEFLATED:
            data = self._inflated(Inflater(self.options.max_message_size), payload, True, sink, budget)
            if data is None:
                return ERROR, b""
            if len(data) <= SMALL_INFLATED:
                return kind, data
            assembled = self._begin(binary, b"", sink) and self._add(data, True, sink)
        else:
            assembled = self._begin(binary, b"", sink, Inflater(self.options.max_message_size)) and (
                self._inflate(payload, done, sink, budget))
        return (TAKEN, b"") if assembled else (ERROR, b"")

    def _inflate(self, chunk: bytes, done: bool, sink: ConnectionSink, budget: ReadBudget) -> bool:
        """A chunk of the compressed message being assembled, inflated and added to it."""
        assert self._inflater is not None
        inflated = self._inflated(self._inflater, chunk, done, sink, budget)
        return inflated is not None and self._add(inflated, done, sink)

    def _inflated(self, inflater: Inflater, chunk: bytes, done: bool, sink: ConnectionSink,
                  budget: ReadBudget) -> Optional[bytes]:
        """``chunk`` inflated within max_message_size (a small frame that would inflate to
        gigabytes fails at the limit), its inflated bytes spent from the budget; None: it
        failed the connection."""
        try:
            inflated = inflater.feed(chunk, done)
        except ProtocolError as error:
            self._fail(error, sink)
            return None
        budget.spend(len(inflated))
        return inflated

    def _add(self, chunk: bytes, done: bool, sink: ConnectionSink) -> bool:
        # One growing buffer, whatever the number of fragments: an unfinished message
        # costs about its size (a list of parts cost 25-37x with 2-byte fragments).
        parts = self._parts
        assert parts is not None  # the reader checks the order of fragments
        memory = self.memory
        if memory is not None and chunk:  # what a message being assembled holds is the worker's too
            if not memory.take(len(chunk)):
                self._fail(OverCapacity(f"the worker's incoming messages hold max_message_memory "
                                        f"({memory.limit} bytes): try again later"), sink)
                return False
            self._held += len(chunk)
        parts += chunk
        if not self._binary:
            try:
                self._decoder.decode(chunk, done)  # fails fast on invalid UTF-8, as it arrives
            except UnicodeDecodeError as exc:
                self._fail(InvalidData(f"invalid UTF-8 in a text message: {exc.reason}"), sink)
                return False
        if done:
            self._drop_message()
            if self.state is OPEN:
                if self._binary:
                    sink._on_binary(bytes(parts))
                else:
                    sink._on_text(parts.decode("utf-8"))
        return True

    def _answer_ping(self, frame: bytes) -> None:
        """A client's ping (RFC 6455 §5.5.2), answered here rather than by the core (16 µs a
        ping through it). A client that keeps pinging without reading our answers is a slow
        consumer: the kernel holds megabytes of 2-byte pongs before our outbox holds any, so
        every UNREAD_PINGS pings the bytes waiting unread in the kernel are checked too; past
        UNREAD_BYTES (or answers waiting in the outbox), the connection is reset."""
        self._pings += 1
        if self.outbox.queued or (not self._pings % UNREAD_PINGS and unsent_bytes(self.sock) > UNREAD_BYTES):
            self.log.warning("socket %s: pings while our answers wait unread: the client is not reading; "
                             "closing the connection", self.id)
            self.abort(SLOW_CONSUMER)
            return
        size = frame[1] & 0x7F  # the reader checked: masked, FIN, at most 125 bytes
        self.outbox.write(bytes((0x8A, size)) + (apply_mask(frame[6:6 + size], frame[2:6]) if size else b""))

    def _drop_message(self) -> None:
        """Forget the message being assembled (complete, failed or cut short): give its bytes back."""
        self._parts = self._decoder = self._inflater = None
        if self._held:
            assert self.memory is not None
            self.memory.give(self._held)
            self._held = 0

    def _release(self) -> None:
        self._drop_message()

    # -- the core ---------------------------------------------------------------------------------

    def _to_core(self, data: bytes, sink: ConnectionSink) -> None:
        """Give the core a control frame (or, in passthrough, whatever comes) and act on it."""
        proto = self._core()
        proto.receive_data(data)
        for frame in proto.events_received():
            assert isinstance(frame, Frame)  # a core made OPEN only reports frames
            if frame.opcode is _PONG:
                sink._on_pong()
            elif frame.opcode is _CLOSE:
                # RFC 6455 §5.4: a close may come between fragments; the partial message is dropped.
                self._drop_message()
        was_open = self.state is OPEN
        self._flush_core()
        if proto.parser_exc is not None and was_open:  # the core failed the connection itself
            self._reader.passthrough = True
            error = as_protocol_error(proto.parser_exc, "a close reason")
            if error is not None:
                sink._on_protocol_error(error)

    def _flush_core(self) -> None:
        """Write what the core produced (pongs, close frames, end of stream)."""
        proto = self._proto
        if proto is None:
            return
        for data in proto.data_to_send():
            if data:
                self.outbox.write(data)
            else:
                self.outbox.write_eof()
        if proto.state is not CORE_OPEN:  # a close frame went out or came in: the close handshake
            self._reader.passthrough = True  # from now on every byte is the core's
            if self.state is OPEN:
                self.state = CLOSING
            if proto.close_expected():
                self.arm_close_timer()

    def _fail(self, error: ProtocolError, sink: ConnectionSink) -> None:
        """Close with the error's code (RFC 6455 §7.1.7) and report it."""
        self._reader.passthrough = True
        self._drop_message()
        self._core().fail(*close_for(error))
        self._flush_core()
        sink._on_protocol_error(error)
