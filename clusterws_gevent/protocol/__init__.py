"""Sans-I/O codecs: bytes in, values out. Nothing here imports gevent, sockets,
Flask or redis (``tests/test_import_rules.py`` checks it)."""
from __future__ import annotations

from .frames import encode_close, encode_frame
from .handshake import accept_key, check_upgrade, http_response, switching_protocols
from .messages import (
    PING,
    PONG,
    decode_message,
    encode_config,
    encode_emit,
    encode_json,
    encode_subscribe_reply,
)
from .reader import ClientFrameReader

__all__ = [
    "ClientFrameReader",
    "encode_close",
    "encode_frame",
    "accept_key",
    "check_upgrade",
    "http_response",
    "switching_protocols",
    "PING",
    "PONG",
    "decode_message",
    "encode_config",
    "encode_emit",
    "encode_json",
    "encode_subscribe_reply",
]
