"""ClusterWS v4 messages (``../shared/spec/protocol.md``) and Python values.

Every protocol message is a JSON array of three items: ``["e", event, data]``,
``["p", channel, data]``, ``["s", "s"|"u"|"c", ...]``. Keepalive uses one-byte
binary frames: the server's ping ``0x39`` ("9") and the client's pong ``0x41`` ("A").
"""
from __future__ import annotations

import json
import json.encoder
import json.scanner
from typing import Any, Callable, List, Mapping, Tuple

from ..exceptions import IncorrectMessage

__all__ = [
    "set_json_default",
    "PING",
    "PONG",
    "encode_json",
    "encode_emit",
    "encode_config",
    "encode_subscribe_reply",
    "encode_publish_frame",
    "encode_channel_entry",
    "decode_message",
]

PING = b"9"
PONG = b"A"

def _json_encoder(ensure_ascii: bool, default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """A compact JSON encoder (like JavaScript's JSON.stringify) built once.

    ``JSONEncoder.encode`` builds a new C encoder on every call (0.8 µs of a
    1.3 µs encode); the C encoder made once and reused does the same work.
    NaN and infinities are refused, as JavaScript's JSON.parse cannot read them.
    ``default`` turns what JSON has no type for into what it has (or raises TypeError).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=False,
                                default=default).encode
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encoder = make(None, default, quote, None, ":", ",", False, False, False)
    return lambda value: "".join(encoder(value, 0))


def set_json_default(default: Callable[[Any], Any]) -> None:
    """Encode what JSON has no type for with ``default`` (a worker serving a Flask app uses
    the app's JSON provider's: ``datetime``, ``UUID``, dataclasses...). Process-wide."""
    global _encode_utf8, _encode_ascii
    _encode_utf8 = _json_encoder(False, default)
    _encode_ascii = _json_encoder(True, default)


_encode_utf8 = _json_encoder(False, json.JSONEncoder().default)  # raw UTF-8, shorter than \u escapes
_encode_ascii = _json_encoder(True, json.JSONEncoder().default)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


_INF = float("inf")
# JSON has no NaN or infinities (JavaScript's JSON.stringify cannot write them, and
# encoding them back would fail later, far from the cause): refused as they arrive.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_scan = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]  # the C scanner: no regex passes


def _decode(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at character {exc.value}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if end != len(text) and text[end:].strip():
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8.

    Strings holding lone surrogates (which JSON decoding can produce) cannot be
    UTF-8: those values are written with ``\\u`` escapes instead.

    Raises:
        TypeError: the value is not JSON serializable.
        ValueError: the value holds NaN or an infinity.
    """
    text = _encode_utf8(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(value).encode("ascii")


def encode_emit(event: str, data: Any) -> bytes:
    """``["e", event, data]``: an event for the client's ``on(event)``."""
    return encode_json(["e", event, data])


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
            message = _decode(message)
        except ValueError as exc:
            raise IncorrectMessage(f"invalid JSON: {exc}") from None
    if not isinstance(message, list) or len(message) != 3:
        raise IncorrectMessage("not an array of three items")
    kind, param, data = message
    if not isinstance(kind, str):
        raise IncorrectMessage("message type is not a string")
    return kind, param, data
