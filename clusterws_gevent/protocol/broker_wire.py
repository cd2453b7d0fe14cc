"""The worker <-> broker protocol: length-prefixed binary frames.

Every frame is ``u32 length | u8 type | payload`` (length counts the type and the
payload; big-endian). Strings are ``u16 length | UTF-8``; message lists are
``u32 count`` then ``u32 length | bytes`` each. Messages travel as the JSON bytes
encoded once by the publishing worker; a broker forwards a PUBLISH frame as it
received it, byte for byte.

A connection starts with HELLO (the cluster key and the worker's id); the broker
answers WELCOME, or closes the connection if the key is wrong.
"""
from __future__ import annotations

import hmac
import struct
import zlib
from typing import List, Sequence, Tuple

from ..exceptions import ProtocolError

__all__ = [
    "HELLO", "WELCOME", "INTEREST", "UNINTEREST", "ACK", "PUBLISH", "WORKERS",
    "MAX_FRAME", "FrameParser", "encode_hello", "decode_hello", "encode_welcome", "encode_interest",
    "decode_interest", "encode_uninterest", "decode_names", "encode_ack", "decode_ack", "encode_publish",
    "decode_publish", "publish_channel", "encode_workers", "decode_workers", "keys_match", "shard",
]

HELLO = 1  #: worker -> broker: u16 worker id, then the cluster key
WELCOME = 2  #: broker -> worker: the key was right
INTEREST = 3  #: worker -> broker: u32 request id, then channel names; answered by ACK
UNINTEREST = 4  #: worker -> broker: channel names
ACK = 5  #: broker -> worker: u32 request id (the interest is live)
PUBLISH = 6  #: both ways: a channel and its messages
WORKERS = 7  #: both ways: one publish_to_workers message

#: Largest frame accepted (a publish batch of many messages fits; a runaway peer does not).
MAX_FRAME = 64 << 20

_HEADER = struct.Struct("!IB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def _frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1, kind) + payload


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("channel names are limited to 65535 bytes")
    return _U16.pack(len(data)) + data


def _read_string(frame: bytes, pos: int) -> Tuple[str, int]:
    (size,) = _U16.unpack_from(frame, pos)
    end = pos + 2 + size
    if end > len(frame):
        raise ProtocolError("truncated string in a broker frame")
    return frame[pos + 2 : end].decode("utf-8"), end


class FrameParser:
    """Cuts a byte stream into broker frames.

    ``feed(data)`` returns ``[(type, frame), ...]``: each frame whole (header
    included), so that it can be forwarded as it is; the decoders take it.
    """

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> List[Tuple[int, bytes]]:
        """The frames that ``data`` completes.

        Raises:
            ProtocolError: a frame announces more than ``max_frame`` bytes, or none.
        """
        buffer = self._buffer
        buffer += data
        frames = []
        pos = 0
        while len(buffer) - pos >= 5:
            length, kind = _HEADER.unpack_from(buffer, pos)
            if length < 1 or length > self.max_frame:
                raise ProtocolError(f"broker frame of {length} bytes")
            end = pos + 4 + length
            if end > len(buffer):
                break
            frames.append((kind, bytes(buffer[pos:end])))
            pos = end
        if pos:
            del buffer[:pos]
        return frames


def encode_hello(worker_id: int, key: bytes) -> bytes:
    """HELLO: who connects, with the cluster key."""
    return _frame(HELLO, _U16.pack(worker_id) + key)


def decode_hello(frame: bytes) -> Tuple[int, bytes]:
    """(worker id, key) of a HELLO frame."""
    if len(frame) < 7:
        raise ProtocolError("truncated HELLO")
    return _U16.unpack_from(frame, 5)[0], frame[7:]


def encode_welcome() -> bytes:
    """WELCOME: the key was right."""
    return _frame(WELCOME, b"")


def keys_match(given: bytes, expected: bytes) -> bool:
    """Compare cluster keys in constant time."""
    return hmac.compare_digest(given, expected)


def _names(names: Sequence[str]) -> bytes:
    return b"".join(_string(name) for name in names)


def decode_names(frame: bytes, pos: int = 5) -> List[str]:
    """The channel names of an UNINTEREST frame (or of INTEREST from ``pos`` 9)."""
    names = []
    while pos < len(frame):
        name, pos = _read_string(frame, pos)
        names.append(name)
    return names


def encode_interest(request_id: int, names: Sequence[str]) -> bytes:
    """INTEREST: route these channels to me; answer ACK(request_id) once it is so."""
    return _frame(INTEREST, _U32.pack(request_id) + _names(names))


def decode_interest(frame: bytes) -> Tuple[int, List[str]]:
    """(request id, names) of an INTEREST frame."""
    if len(frame) < 9:
        raise ProtocolError("truncated INTEREST")
    return _U32.unpack_from(frame, 5)[0], decode_names(frame, 9)


def encode_uninterest(names: Sequence[str]) -> bytes:
    """UNINTEREST: stop routing these channels to me."""
    return _frame(UNINTEREST, _names(names))


def encode_ack(request_id: int) -> bytes:
    """ACK: the interest of ``request_id`` is live."""
    return _frame(ACK, _U32.pack(request_id))


def decode_ack(frame: bytes) -> int:
    """The request id of an ACK frame."""
    if len(frame) < 9:
        raise ProtocolError("truncated ACK")
    return int(_U32.unpack_from(frame, 5)[0])


def encode_publish(channel: str, messages: Sequence[bytes]) -> bytes:
    """PUBLISH: already encoded messages of one channel, in publish order."""
    parts = [_string(channel), _U32.pack(len(messages))]
    for message in messages:
        parts.append(_U32.pack(len(message)))
        parts.append(message)
    return _frame(PUBLISH, b"".join(parts))


def publish_channel(frame: bytes) -> str:
    """The channel of a PUBLISH frame, without reading its messages (brokers route on it)."""
    return _read_string(frame, 5)[0]


def decode_publish(frame: bytes) -> Tuple[str, List[bytes]]:
    """(channel, messages) of a PUBLISH frame."""
    channel, pos = _read_string(frame, 5)
    (count,) = _U32.unpack_from(frame, pos)
    pos += 4
    messages = []
    for _ in range(count):
        (size,) = _U32.unpack_from(frame, pos)
        pos += 4
        messages.append(frame[pos : pos + size])
        pos += size
    if pos != len(frame):
        raise ProtocolError("malformed PUBLISH frame")
    return channel, messages


def encode_workers(message: bytes) -> bytes:
    """WORKERS: one publish_to_workers message (JSON bytes)."""
    return _frame(WORKERS, message)


def decode_workers(frame: bytes) -> bytes:
    """The message of a WORKERS frame."""
    return frame[5:]


def shard(channel: str, brokers: int) -> int:
    """The broker of ``channel``: a stable hash, the same in every process and run.

    (Python's ``hash()`` differs between processes.) One channel always takes
    the same broker, so its messages keep their order.
    """
    return zlib.crc32(channel.encode("utf-8")) % brokers
