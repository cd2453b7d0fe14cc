"""What travels on a Redis channel of ``Scaler.Redis``: the envelope of a publish batch.

``0x01 | publisher id (8 bytes) | u32 count | (u32 length | JSON bytes) * count``

The publisher id lets a worker drop its own publishes (Redis sends them back to
every subscriber, the publisher included) by comparing 8 bytes, before decoding.
The messages are the JSON bytes encoded once by the publisher; a receiver hands
them to its hub as they are. Anything else on our channels (another program's
PUBLISH, a truncated frame) is refused with :class:`ProtocolError`, never delivered.

A channel with history gets version 2, written by the publish script in Redis
(``scale/redis_scripts.py``) once it numbered the messages:

``0x02 | publisher id (8 bytes) | epoch (16 ASCII hex digits) | first offset (20 ASCII
digits) | u32 count | (u32 length | JSON bytes) * count``

Redis channel names live under a prefix (``scale_options["redis_prefix"]``): app
channel X is ``<prefix>:c:X``, ``publish_to_workers`` is ``<prefix>:w``, and each
worker's liveness probe is ``<prefix>:k:<publisher id in hex>``: no client-chosen
name can reach another namespace. A channel's history and presence keys hold its
name between braces (``<prefix>:h:{X}``...): a Redis Cluster hash tag, so that every
key of one channel is in one slot and one script per publish reaches them all. On a
Redis Cluster the app channel is a shard channel with the same tag, ``<prefix>:c:{X}``,
and each worker has a probe channel per shard, ``<prefix>:k:<id>:{<tag in its slots>}``.
"""
from __future__ import annotations

import struct
from typing import List, Sequence, Tuple

from ..exceptions import ProtocolError

__all__ = ["VERSION", "NUMBERED_VERSION", "ID_SIZE", "EPOCH_SIZE", "encode_envelope", "decode_envelope",
           "decode_numbered_envelope", "is_numbered", "publisher_of", "channel_key", "workers_key", "probe_key",
           "history_keys", "presence_keys", "hash_tag",
           "channel_of_tag"]

#: The first byte of every envelope...
VERSION = 1
#: ... and of one the publish script numbered.
NUMBERED_VERSION = 2
#: ASCII characters of an epoch in a numbered envelope (``pubsub.history.new_epoch``).
EPOCH_SIZE = 16
_OFFSET_DIGITS = 20
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


def is_numbered(envelope: bytes) -> bool:
    """Whether ``envelope`` carries numbered messages (version 2)."""
    return envelope[:1] == bytes((NUMBERED_VERSION,))


def decode_numbered_envelope(envelope: bytes) -> Tuple[str, int, List[bytes]]:
    """(epoch, first offset, messages) of a numbered envelope.

    Raises:
        ProtocolError: malformed.
    """
    head = 1 + ID_SIZE + EPOCH_SIZE + _OFFSET_DIGITS
    if len(envelope) < head + 4:
        raise ProtocolError("not a numbered clusterws envelope: too short")
    try:
        epoch = envelope[1 + ID_SIZE : 1 + ID_SIZE + EPOCH_SIZE].decode("ascii")
        first = int(envelope[1 + ID_SIZE + EPOCH_SIZE : head])
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("malformed numbered envelope") from None
    _, messages = decode_envelope(bytes((VERSION,)) + envelope[1 : 1 + ID_SIZE] + envelope[head:])
    return epoch, first, messages


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


def channel_key(prefix: str, channel: str, sharded: bool = False) -> bytes:
    """The Redis channel of app channel ``channel``; on a Redis Cluster (``sharded``) a shard
    channel whose name holds the channel's hash tag, in the slot of its other keys."""
    return f"{prefix}:c:{hash_tag(channel) if sharded else channel}".encode()


def workers_key(prefix: str) -> bytes:
    """The Redis channel of ``publish_to_workers``."""
    return f"{prefix}:w".encode()


def hash_tag(channel: str) -> str:
    """``{channel}``: the Redis Cluster hash tag of every key of ``channel``. Redis hashes what
    lies between the first ``{`` and the next ``}``; an empty name or one that begins with ``}``
    would leave that empty (the whole key hashed, each key in another slot), so it gets a ``=``
    first (and so does one that begins with ``=``: :func:`channel_of_tag` reads every tag back)."""
    return "{=" + channel + "}" if channel[:1] in ("}", "=", "") else "{" + channel + "}"


def channel_of_tag(tag: str) -> str:
    """The channel of a :func:`hash_tag`."""
    inner = tag[1:-1]
    return inner[1:] if inner[:1] == "=" else inner


def history_keys(prefix: str, channel: str) -> Tuple[bytes, bytes]:
    """(stream, meta) of a channel with history: its messages by offset, and its epoch and top offset."""
    tag = hash_tag(channel)
    return f"{prefix}:h:{tag}".encode(), f"{prefix}:m:{tag}".encode()


def presence_keys(prefix: str, channel: str) -> Tuple[bytes, bytes]:
    """(entries, expiries) of a channel with presence: socket id -> info, socket id -> expiry."""
    tag = hash_tag(channel)
    return f"{prefix}:p:{tag}".encode(), f"{prefix}:q:{tag}".encode()


def probe_key(prefix: str, publisher: bytes, tag: str = "") -> bytes:
    """The Redis channel a worker's liveness probes go to (only it subscribes); on a Redis
    Cluster one per shard, each with a hash tag in that shard's slots."""
    return f"{prefix}:k:{publisher.hex()}{':{' + tag + '}' if tag else ''}".encode("ascii")
