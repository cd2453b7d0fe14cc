"""ClusterWS v4 messages (``../shared/spec/protocol.md``) and Python values.

Every protocol message is a JSON array of three items: ``["e", event, data]``,
``["p", channel, data]``, ``["s", "s"|"u"|"c", ...]``. Keepalive uses one-byte
binary frames: the server's ping ``0x39`` ("9") and the client's pong ``0x41`` ("A").

The extension for recovery and presence (``docs/protocol.md``; the original clients
never send its requests, so they never get its answers): ``["s","r",{ch: [epoch,
offset] | null}]`` subscribes with a position and gets ``["s","r",{ch: result}]``;
the subscriber's live messages then come as ``["p","o",{ch: [epoch, first offset,
[messages]]}]``; join and leave events as ``["s","j",[ch, id, info]]`` and
``["s","l",[ch, id, info]]``.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Tuple

from ..exceptions import IncorrectMessage
from . import json_codec

__all__ = [
    "PING",
    "PONG",
    "encode_json",
    "encode_emit",
    "encode_config",
    "encode_subscribe_reply",
    "encode_publish_frame",
    "encode_channel_entry",
    "encode_positioned_entry",
    "encode_positioned_frame",
    "encode_recover_reply",
    "encode_presence_event",
    "decode_message",
    "RECOVER",
    "POSITIONED",
]

#: The second item of a subscribe-with-position request and of its reply: ``["s","r",...]``.
RECOVER = "r"
#: The second item of a publish frame whose entries carry positions: ``["p","o",...]``.
POSITIONED = "o"

PING = b"9"
PONG = b"A"


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8 (``json_codec``).

    Strings holding lone surrogates (which JSON decoding can produce) cannot be
    UTF-8: those values are written with ``\\u`` escapes instead.

    Raises:
        TypeError: the value is not JSON serializable.
        ValueError: the value holds NaN or an infinity.
    """
    return json_codec.encode(value)


def encode_emit(event: str, data: Any) -> bytes:
    """``["e", event, data]``: an event for the client's ``on(event)``."""
    return json_codec.encode(["e", event, data])


def encode_config(auto_ping: bool, ping_interval_ms: int) -> bytes:
    """The configuration message sent on connect (keys stay camelCase on the wire)."""
    return encode_json(["s", "c", {"autoPing": auto_ping, "pingInterval": ping_interval_ms}])


def encode_subscribe_reply(results: Mapping[str, bool]) -> bytes:
    """``["s", "s", {channel: accepted}]``."""
    return encode_json(["s", "s", dict(results)])


def encode_channel_entry(channel: str, messages: List[bytes]) -> bytes:
    """``"channel":[m1,m2]`` from already-encoded messages: one channel's part of a
    publish batch, encoded once and shared by every subscriber."""
    return encode_json(channel) + b":[" + b",".join(messages) + b"]"


def encode_publish_frame(entries: List[bytes]) -> bytes:
    """``["p",null,{...}]`` from channel entries (see :func:`encode_channel_entry`)."""
    return b'["p",null,{' + b",".join(entries) + b"}]"


def encode_positioned_entry(channel: str, epoch: str, first: int, messages: List[bytes]) -> bytes:
    """``"channel":["epoch",first,[m1,m2]]``: one channel's part of a positioned frame (the
    messages' offsets are first, first + 1, ...)."""
    return (encode_json(channel) + b':[' + encode_json(epoch) + b"," + str(first).encode() + b",["
            + b",".join(messages) + b"]]")


def encode_positioned_frame(entries: List[bytes]) -> bytes:
    """``["p","o",{...}]`` from positioned entries (see :func:`encode_positioned_entry`)."""
    return b'["p","o",{' + b",".join(entries) + b"}]"


def encode_recover_reply(results: Mapping[str, Any]) -> bytes:
    """``["s","r",{channel: result}]``: ``false`` (refused), or ``{"epoch", "offset", "recovered",
    "publications": [[offset, message], ...]}`` where each result's ``publications`` holds
    already encoded ``(offset, bytes)`` pairs."""
    parts = []
    for channel, result in results.items():
        if not result:
            parts.append(encode_json(channel) + b":false")
            continue
        publications = b",".join(b"[" + str(offset).encode() + b"," + message + b"]"
                                 for offset, message in result["publications"])
        parts.append(encode_json(channel) + b':{"epoch":' + encode_json(result["epoch"]) + b',"offset":'
                     + str(result["offset"]).encode() + b',"recovered":' + (b"true" if result["recovered"] else
                                                                            b"false")
                     + b',"publications":[' + publications + b"]}")
    return b'["s","r",{' + b",".join(parts) + b"}]"


def encode_presence_event(joined: bool, channel: str, socket_id: str, info: bytes) -> bytes:
    """``["s","j",[channel, id, info]]`` (joined) or ``["s","l",...]`` (left); ``info`` is JSON."""
    return (b'["s","' + (b"j" if joined else b"l") + b'",[' + encode_json(channel) + b"," + encode_json(socket_id)
            + b"," + info + b"]]")


def decode_message(message: Any) -> Tuple[str, Any, Any]:
    """A ClusterWS message as ``(kind, param, data)``.

    Accepts the text of a frame (str or UTF-8 bytes) or an already decoded list.

    Raises:
        IncorrectMessage: not a JSON array of three items (its ``detail`` says why).
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IncorrectMessage(f"not UTF-8: {exc}") from None
    if isinstance(message, str):
        if not message.startswith("["):
            raise IncorrectMessage("does not start with '['")
        try:
            message = json_codec.decode(message)
        except ValueError as exc:
            raise IncorrectMessage(f"invalid JSON: {exc}") from None
    if not isinstance(message, list) or len(message) != 3:
        raise IncorrectMessage("not an array of three items")
    kind, param, data = message
    if not isinstance(kind, str):
        raise IncorrectMessage("message type is not a string")
    return kind, param, data
