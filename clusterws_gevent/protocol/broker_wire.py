"""The worker <-> broker protocol: length-prefixed binary frames.

Every frame is ``u32 length | u8 type | payload`` (length counts the type and the
payload; big-endian). Strings are ``u16 length | UTF-8``; message lists are
``u32 count`` then ``u32 length | bytes`` each. Messages travel as the JSON bytes
encoded once by the publishing worker; a broker forwards a PUBLISH frame as it
received it, byte for byte.

A connection starts with a mutual challenge-response over the cluster key, which
never crosses the wire (a process that only listens on a broker's port, or only
connects to one, learns nothing it can use):

1. worker -> broker  HELLO: protocol version, worker id, a fresh 32-byte nonce Nw;
2. broker -> worker  CHALLENGE: a fresh nonce Nb and HMAC-SHA256(key, "broker" Nw Nb);
3. the worker checks the broker's proof (constant-time) before it sends anything else;
   worker -> broker  PROOF: HMAC-SHA256(key, "worker" Nb Nw id);
4. broker -> worker  WELCOME, once the worker's proof checks; else it closes.

Each side proves itself over the other's fresh nonce, with a different label, so
neither a recorded handshake nor a reflected one passes. Until the worker's proof
checks, the broker accepts no frame over :data:`HANDSHAKE_MAX_FRAME` bytes.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..exceptions import ProtocolError

__all__ = [
    "HELLO", "WELCOME", "INTEREST", "UNINTEREST", "ACK", "PUBLISH", "WORKERS", "CHALLENGE", "PROOF", "PING",
    "PONG", "VERSION", "NONCE_SIZE", "PROOF_SIZE", "NODE_ID_SIZE", "encode_ping", "encode_pong", "rendezvous",
    "MAX_FRAME", "HANDSHAKE_MAX_FRAME", "FrameParser", "new_nonce", "encode_hello",
    "decode_hello", "broker_proof", "worker_proof", "encode_challenge", "decode_challenge", "encode_proof",
    "decode_proof", "encode_welcome", "proofs_match", "encode_interest", "decode_interest", "encode_uninterest",
    "decode_names", "encode_ack", "decode_ack", "encode_publish", "decode_publish", "publish_channel",
    "encode_workers", "decode_workers", "shard", "NUMBERED", "HISTORY", "HISTORY_READ", "PRESENCE_JOIN",
    "PRESENCE_LEAVE", "PRESENCE", "PRESENCE_READ", "encode_numbered", "decode_numbered", "encode_history",
    "decode_history", "encode_history_read", "decode_history_read", "encode_presence_join", "decode_presence_join",
    "encode_presence_leave", "decode_presence_leave", "encode_presence", "decode_presence", "encode_presence_read",
    "decode_presence_read", "request_id", "message_count",
]

HELLO = 1  #: worker -> broker: u8 version, u16 worker id, the worker's nonce
WELCOME = 2  #: broker -> worker: the worker proved it holds the key
INTEREST = 3  #: worker -> broker: u32 request id, then channel names; answered by ACK
UNINTEREST = 4  #: worker -> broker: channel names
ACK = 5  #: broker -> worker: u32 request id (the interest is live)
PUBLISH = 6  #: both ways: a channel and its messages
WORKERS = 7  #: both ways: one publish_to_workers message
CHALLENGE = 8  #: broker -> worker: the broker's nonce and its proof
PROOF = 9  #: worker -> broker: the worker's proof
PING = 10  #: broker -> hub: are you there (hub links only; a silent link is dropped)
PONG = 11  #: hub -> broker: the answer
NUMBERED = 12  #: broker -> worker: a channel's messages as its broker numbered them (epoch, first offset)
HISTORY = 13  #: worker -> broker: u32 request id, a channel, since and limit; answered by HISTORY_READ
HISTORY_READ = 14  #: broker -> worker: u32 request id, epoch, latest offset, (offset, message) pairs
PRESENCE_JOIN = 15  #: worker -> broker: a channel, a socket id, its info (JSON)
PRESENCE_LEAVE = 16  #: worker -> broker: a channel, a socket id
PRESENCE = 17  #: worker -> broker: u32 request id, a channel; answered by PRESENCE_READ
PRESENCE_READ = 18  #: broker -> worker: u32 request id, then (socket id, info) pairs

#: Version of this protocol, in HELLO: a broker refuses a worker of another version
#: (2: history and presence).
VERSION = 2
#: Bytes of each side's nonce, and of an HMAC-SHA256 proof.
NONCE_SIZE = PROOF_SIZE = 32
#: Bytes of a server's or a hub's id (hub links: which server a broker belongs to, which hub this is).
NODE_ID_SIZE = 8
#: Largest frame accepted (a publish batch of many messages fits; a runaway peer does not).
MAX_FRAME = 64 << 20
#: Largest frame accepted before the peer proved it holds the key (the handshake's frames).
HANDSHAKE_MAX_FRAME = 1 + NONCE_SIZE + PROOF_SIZE + NODE_ID_SIZE

_HEADER = struct.Struct("!IB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_I64 = struct.Struct("!q")


def _frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1, kind) + payload


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("channel names are limited to 65535 bytes")
    return _U16.pack(len(data)) + data


def _read_u32(frame: bytes, pos: int) -> int:
    if pos + 4 > len(frame):
        raise ProtocolError("truncated broker frame")
    return int(_U32.unpack_from(frame, pos)[0])


def _read_string(frame: bytes, pos: int) -> Tuple[str, int]:
    if pos + 2 > len(frame):
        raise ProtocolError("truncated string in a broker frame")
    (size,) = _U16.unpack_from(frame, pos)
    end = pos + 2 + size
    if end > len(frame):
        raise ProtocolError("truncated string in a broker frame")
    try:
        return frame[pos + 2 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise ProtocolError("a string in a broker frame is not UTF-8") from None


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


def new_nonce() -> bytes:
    """A fresh random nonce for the handshake."""
    return os.urandom(NONCE_SIZE)


def encode_hello(worker_id: int, nonce: bytes, server_id: bytes = b"") -> bytes:
    """HELLO: the protocol version, who connects (a worker id; on a hub link, a broker's
    number and its server's id), and the connecting side's fresh nonce."""
    return _frame(HELLO, bytes((VERSION,)) + _U16.pack(worker_id) + nonce + server_id)


def decode_hello(frame: bytes) -> Tuple[int, int, bytes, bytes]:
    """(version, worker id, nonce, server id or b"") of a HELLO frame.

    Raises:
        ProtocolError: not a HELLO of this size.
    """
    if len(frame) not in (8 + NONCE_SIZE, 8 + NONCE_SIZE + NODE_ID_SIZE):
        raise ProtocolError("malformed HELLO")
    return frame[5], _U16.unpack_from(frame, 6)[0], frame[8 : 8 + NONCE_SIZE], frame[8 + NONCE_SIZE :]


def broker_proof(key: bytes, worker_nonce: bytes, broker_nonce: bytes, node_id: bytes = b"") -> bytes:
    """The accepting side's proof that it holds ``key``, over both nonces (and its id)."""
    return hmac.new(key, b"broker" + worker_nonce + broker_nonce + node_id, hashlib.sha256).digest()


def worker_proof(key: bytes, broker_nonce: bytes, worker_nonce: bytes, worker_id: int, server_id: bytes = b"") -> bytes:
    """The connecting side's proof that it holds ``key``, over both nonces and its ids."""
    return hmac.new(key, b"worker" + broker_nonce + worker_nonce + _U16.pack(worker_id) + server_id,
                    hashlib.sha256).digest()


def encode_challenge(broker_nonce: bytes, proof: bytes, node_id: bytes = b"") -> bytes:
    """CHALLENGE: the accepting side's nonce, its proof (and, from a hub, the hub's id)."""
    return _frame(CHALLENGE, broker_nonce + proof + node_id)


def decode_challenge(frame: bytes) -> Tuple[bytes, bytes, bytes]:
    """(nonce, proof, node id or b"") of a CHALLENGE frame."""
    if len(frame) not in (5 + NONCE_SIZE + PROOF_SIZE, 5 + NONCE_SIZE + PROOF_SIZE + NODE_ID_SIZE):
        raise ProtocolError("malformed CHALLENGE")
    end = 5 + NONCE_SIZE + PROOF_SIZE
    return frame[5 : 5 + NONCE_SIZE], frame[5 + NONCE_SIZE : end], frame[end:]


def encode_ping() -> bytes:
    """PING: a hub link's keepalive."""
    return _frame(PING, b"")


def encode_pong() -> bytes:
    """PONG: the hub's answer to PING."""
    return _frame(PONG, b"")


def encode_proof(proof: bytes) -> bytes:
    """PROOF: the worker's proof."""
    return _frame(PROOF, proof)


def decode_proof(frame: bytes) -> bytes:
    """The proof of a PROOF frame."""
    if len(frame) != 5 + PROOF_SIZE:
        raise ProtocolError("malformed PROOF")
    return frame[5:]


def encode_welcome() -> bytes:
    """WELCOME: the worker's proof checked."""
    return _frame(WELCOME, b"")


def proofs_match(given: bytes, expected: bytes) -> bool:
    """Compare proofs in constant time."""
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
    return _read_u32(frame, 5), decode_names(frame, 9)


def encode_uninterest(names: Sequence[str]) -> bytes:
    """UNINTEREST: stop routing these channels to me."""
    return _frame(UNINTEREST, _names(names))


def encode_ack(request_id: int) -> bytes:
    """ACK: the interest of ``request_id`` is live."""
    return _frame(ACK, _U32.pack(request_id))


def decode_ack(frame: bytes) -> int:
    """The request id of an ACK frame."""
    return _read_u32(frame, 5)


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
    count = _read_u32(frame, pos)
    pos += 4
    messages = []
    for _ in range(count):  # each message takes at least 4 bytes: bounded by the frame
        size = _read_u32(frame, pos)
        pos += 4
        if pos + size > len(frame):
            raise ProtocolError("malformed PUBLISH frame")
        messages.append(frame[pos : pos + size])
        pos += size
    if pos != len(frame):
        raise ProtocolError("malformed PUBLISH frame")
    return channel, messages


def _messages(messages: Sequence[bytes]) -> bytes:
    parts = [_U32.pack(len(messages))]
    for message in messages:
        parts.append(_U32.pack(len(message)))
        parts.append(message)
    return b"".join(parts)


def _read_messages(frame: bytes, pos: int, what: str) -> Tuple[List[bytes], int]:
    count = _read_u32(frame, pos)
    pos += 4
    messages = []
    for _ in range(count):  # each message takes at least 4 bytes: bounded by the frame
        size = _read_u32(frame, pos)
        pos += 4
        if pos + size > len(frame):
            raise ProtocolError(f"malformed {what} frame")
        messages.append(frame[pos : pos + size])
        pos += size
    return messages, pos


def _read_u64(frame: bytes, pos: int, unpack: Any = _U64.unpack_from) -> int:
    if pos + 8 > len(frame):
        raise ProtocolError("truncated broker frame")
    return int(unpack(frame, pos)[0])


def _end(frame: bytes, pos: int, what: str) -> None:
    if pos != len(frame):
        raise ProtocolError(f"malformed {what} frame")


def request_id(frame: bytes) -> int:
    """The request id of a HISTORY, HISTORY_READ, PRESENCE or PRESENCE_READ frame."""
    return _read_u32(frame, 5)


def message_count(frame: bytes) -> int:
    """How many messages a PUBLISH or NUMBERED frame carries (1 for any other frame), read
    from its header (what a broker counts when it drops the frame)."""
    kind = frame[4]
    if kind == PUBLISH:
        return _read_u32(frame, _read_string(frame, 5)[1])
    if kind == NUMBERED:
        return _read_u32(frame, _read_string(frame, _read_string(frame, 5)[1])[1] + 8)
    return 1


def encode_numbered(channel: str, epoch: str, first: int, messages: Sequence[bytes]) -> bytes:
    """NUMBERED: messages of a channel with history, numbered ``first``... in ``epoch``."""
    return _frame(NUMBERED, _string(channel) + _string(epoch) + _U64.pack(first) + _messages(messages))


def decode_numbered(frame: bytes) -> Tuple[str, str, int, List[bytes]]:
    """(channel, epoch, first offset, messages) of a NUMBERED frame."""
    channel, pos = _read_string(frame, 5)
    epoch, pos = _read_string(frame, pos)
    first = _read_u64(frame, pos)
    messages, pos = _read_messages(frame, pos + 8, "NUMBERED")
    _end(frame, pos, "NUMBERED")
    return channel, epoch, first, messages


def encode_history(request: int, channel: str, since: Optional[int], limit: Optional[int]) -> bytes:
    """HISTORY: read a channel's history (-1: no ``since``, no ``limit``)."""
    return _frame(HISTORY, _U32.pack(request) + _string(channel) + _I64.pack(-1 if since is None else since)
                  + _I64.pack(-1 if limit is None else limit))


def decode_history(frame: bytes) -> Tuple[int, str, Optional[int], Optional[int]]:
    """(request id, channel, since, limit) of a HISTORY frame."""
    channel, pos = _read_string(frame, 9)
    since = _read_u64(frame, pos, _I64.unpack_from)
    limit = _read_u64(frame, pos + 8, _I64.unpack_from)
    _end(frame, pos + 16, "HISTORY")
    return request_id(frame), channel, None if since < 0 else since, None if limit < 0 else limit


def encode_history_read(request: int, epoch: str, offset: int, messages: Sequence[Tuple[int, bytes]]) -> bytes:
    """HISTORY_READ: the answer to HISTORY."""
    parts = [_U32.pack(request), _string(epoch), _U64.pack(offset), _U32.pack(len(messages))]
    for number, message in messages:
        parts.append(_U64.pack(number) + _U32.pack(len(message)))
        parts.append(message)
    return _frame(HISTORY_READ, b"".join(parts))


def decode_history_read(frame: bytes) -> Tuple[int, str, int, List[Tuple[int, bytes]]]:
    """(request id, epoch, latest offset, [(offset, message)]) of a HISTORY_READ frame."""
    epoch, pos = _read_string(frame, 9)
    offset = _read_u64(frame, pos)
    count = _read_u32(frame, pos + 8)
    pos += 12
    messages = []
    for _ in range(count):
        number = _read_u64(frame, pos)
        size = _read_u32(frame, pos + 8)
        pos += 12
        if pos + size > len(frame):
            raise ProtocolError("malformed HISTORY_READ frame")
        messages.append((number, frame[pos : pos + size]))
        pos += size
    _end(frame, pos, "HISTORY_READ")
    return request_id(frame), epoch, offset, messages


def encode_presence_join(channel: str, socket_id: str, info: bytes) -> bytes:
    """PRESENCE_JOIN: ``socket_id`` is subscribed to ``channel``; ``info`` is JSON."""
    return _frame(PRESENCE_JOIN, _string(channel) + _string(socket_id) + info)


def decode_presence_join(frame: bytes) -> Tuple[str, str, bytes]:
    """(channel, socket id, info) of a PRESENCE_JOIN frame."""
    channel, pos = _read_string(frame, 5)
    socket_id, pos = _read_string(frame, pos)
    return channel, socket_id, frame[pos:]


def encode_presence_leave(channel: str, socket_id: str) -> bytes:
    """PRESENCE_LEAVE: ``socket_id`` left ``channel``."""
    return _frame(PRESENCE_LEAVE, _string(channel) + _string(socket_id))


def decode_presence_leave(frame: bytes) -> Tuple[str, str]:
    """(channel, socket id) of a PRESENCE_LEAVE frame."""
    channel, pos = _read_string(frame, 5)
    socket_id, pos = _read_string(frame, pos)
    _end(frame, pos, "PRESENCE_LEAVE")
    return channel, socket_id


def encode_presence(request: int, channel: str) -> bytes:
    """PRESENCE: who is subscribed to ``channel``."""
    return _frame(PRESENCE, _U32.pack(request) + _string(channel))


def decode_presence(frame: bytes) -> Tuple[int, str]:
    """(request id, channel) of a PRESENCE frame."""
    channel, pos = _read_string(frame, 9)
    _end(frame, pos, "PRESENCE")
    return request_id(frame), channel


def encode_presence_read(request: int, entries: Dict[str, bytes]) -> bytes:
    """PRESENCE_READ: the answer to PRESENCE, ``{socket id: info}``."""
    parts = [_U32.pack(request), _U32.pack(len(entries))]
    for socket_id, info in entries.items():
        parts.append(_string(socket_id) + _U32.pack(len(info)))
        parts.append(info)
    return _frame(PRESENCE_READ, b"".join(parts))


def decode_presence_read(frame: bytes) -> Tuple[int, Dict[str, bytes]]:
    """(request id, {socket id: info}) of a PRESENCE_READ frame."""
    count = _read_u32(frame, 9)
    pos = 13
    entries = {}
    for _ in range(count):
        socket_id, pos = _read_string(frame, pos)
        size = _read_u32(frame, pos)
        pos += 4
        if pos + size > len(frame):
            raise ProtocolError("malformed PRESENCE_READ frame")
        entries[socket_id] = frame[pos : pos + size]
        pos += size
    _end(frame, pos, "PRESENCE_READ")
    return request_id(frame), entries


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


def rendezvous(channel: str, nodes: Sequence[bytes]) -> int:
    """The index in ``nodes`` (hub ids) that owns ``channel``: the highest crc32 of id and name.

    Every server computes the same owner from the same set of hubs whatever order it
    learnt them in, and a lost hub moves only its own channels (rendezvous hashing).
    """
    name = channel.encode("utf-8")
    return max(range(len(nodes)), key=lambda i: (zlib.crc32(nodes[i] + name), nodes[i]))
