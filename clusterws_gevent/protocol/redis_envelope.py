"""What travels on a Redis channel of ``Scaler.Redis``: the envelope of a publish batch.

``0x01 | publisher id (8 bytes) | u32 count | (u32 length | JSON bytes) * count``

The publisher id lets a worker drop its own publishes (Redis sends them back to
every subscriber, the publisher included) by comparing 8 bytes, before decoding.
The messages are the JSON bytes encoded once by the publisher; a receiver hands
them to its hub as they are. Anything else on our channels (another program's
PUBLISH, a truncated frame) is refused with :class:`ProtocolError`, never delivered.

Redis channel names live under a prefix (``scale_options["redis_prefix"]``): app
channel X is ``<prefix>:c:X``, ``publish_to_workers`` is ``<prefix>:w``, and each
worker's liveness probe is ``<prefix>:k:<publisher id in hex>``: no client-chosen
name can reach another namespace.
"""
from __future__ import annotations

import struct
from typing import List, Sequence, Tuple

from ..exceptions import ProtocolError

__all__ = ["VERSION", "ID_SIZE", "encode_envelope", "decode_envelope", "publisher_of", "channel_key",
           "workers_key", "probe_key"]

#: The first byte of every envelope.
VERSION = 1
#: Bytes of a publisher id.
ID_SIZE = 8

_HEAD = struct.Struct("!B8sI")
_U32 = struct.Struct("!I")


def encode_envelope(publisher: bytes, messages: Sequence[bytes]) -> bytes:
    """An envelope of already encoded messages from ``publisher`` (8 bytes)."""
    parts = [_HEAD.pack(VERSION, publisher, len(messages))]
    for message in messages:
        parts.append(_U32.pack(len(message)))
        parts.append(message)
    return b"".join(parts)


def publisher_of(envelope: bytes) -> bytes:
    """The publisher id of an envelope (b"" if it is too short to have one)."""
    return envelope[1 : 1 + ID_SIZE] if len(envelope) >= _HEAD.size else b""


def decode_envelope(envelope: bytes) -> Tuple[bytes, List[bytes]]:
    """(publisher id, messages) of an envelope.

    Raises:
        ProtocolError: not an envelope of this version, or malformed.
    """
    if len(envelope) < _HEAD.size:
        raise ProtocolError("not a clusterws envelope: too short")
    version, publisher, count = _HEAD.unpack_from(envelope)
    if version != VERSION:
        raise ProtocolError(f"not a clusterws envelope (first byte {version})")
    pos = _HEAD.size
    end = len(envelope)
    if count > (end - pos) // 4:  # each message takes at least its 4-byte length
        raise ProtocolError("malformed envelope: more messages announced than it holds")
    messages = []
    for _ in range(count):
        if pos + 4 > end:
            raise ProtocolError("malformed envelope: truncated")
        (size,) = _U32.unpack_from(envelope, pos)
        pos += 4
        if pos + size > end:
            raise ProtocolError("malformed envelope: truncated message")
        messages.append(envelope[pos : pos + size])
        pos += size
    if pos != end:
        raise ProtocolError("malformed envelope: bytes after the last message")
    return publisher, messages


def channel_key(prefix: str, channel: str) -> bytes:
    """The Redis channel of app channel ``channel``."""
    return f"{prefix}:c:{channel}".encode()


def workers_key(prefix: str) -> bytes:
    """The Redis channel of ``publish_to_workers``."""
    return f"{prefix}:w".encode()


def probe_key(prefix: str, publisher: bytes) -> bytes:
    """The Redis channel a worker's liveness probes go to (only it subscribes)."""
    return f"{prefix}:k:{publisher.hex()}".encode("ascii")
