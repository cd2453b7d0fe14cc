"""RFC 6455 frames as the server writes them (``reader.py`` reads the client's).

Frames from server to client are never masked (RFC 6455 §5.1), so one encoded
frame can be written to any number of sockets: fan-out encodes once.
"""
from __future__ import annotations

import struct

__all__ = [
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "frame_header",
    "encode_frame",
    "encode_close",
    "is_valid_close_code",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack
_CLOSE_CODE = struct.Struct("!H").pack



def frame_header(opcode: int, length: int, rsv1: bool = False) -> bytes:
    """The header of a final, unmasked frame of ``length`` payload bytes (``rsv1``: a
    compressed message, RFC 7692)."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return _HEADER_16(first, 126, length)
    return _HEADER_64(first, 127, length)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A complete final, unmasked frame."""
    return frame_header(opcode, len(payload)) + payload


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 §7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame carrying ``code`` and ``reason``.

    Raises:
        ValueError: the code may not be sent, or the reason is over 123 bytes.
    """
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}: use 1000-1003, 1007-1014 or 3000-4999")
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError("close reason is over 123 bytes of UTF-8 (RFC 6455 §5.5)")
    return encode_frame(OP_CLOSE, _CLOSE_CODE(code) + data)
