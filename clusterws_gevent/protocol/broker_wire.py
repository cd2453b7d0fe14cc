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
from typing import List, Sequence, Tuple

from ..exceptions import ProtocolError

__all__ = [
    "HELLO", "WELCOME", "INTEREST", "UNINTEREST", "ACK", "PUBLISH", "WORKERS", "CHALLENGE", "PROOF", "PING",
    "PONG", "VERSION", "NONCE_SIZE", "PROOF_SIZE", "NODE_ID_SIZE", "encode_ping", "encode_pong", "rendezvous",
    "MAX_FRAME", "HANDSHAKE_MAX_FRAME", "FrameParser", "new_nonce", "encode_hello",
    "decode_hello", "broker_proof", "worker_proof", "encode_challenge", "decode_challenge", "encode_proof",
    "decode_proof", "encode_welcome", "proofs_match", "encode_interest", "decode_interest", "encode_uninterest",
    "decode_names", "encode_ack", "decode_ack", "encode_publish", "decode_publish", "publish_channel",
    "encode_workers", "decode_workers", "shard",
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

#: Version of this protocol, in HELLO: a broker refuses a worker of another version.
VERSION = 1
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
