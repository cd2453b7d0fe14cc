"""permessage-deflate (RFC 7692), sans I/O: the negotiation, compressing a message, and
inflating one within a bound.

We always answer with ``server_no_context_takeover`` and ``client_no_context_takeover``
(a server may add both to any offer it accepts, §7.1.1): each message is compressed
alone, by either side. That is what lets a broadcast be compressed once and the same
bytes go to every subscriber, and what keeps a connection's memory flat: no zlib window
is held between messages, neither ours (one compressor per process and parameters,
reset after each message by ``Z_FULL_FLUSH``) nor the client's (an inflater lives only
while its message arrives, about 40 KiB, then goes).

zlib directly rather than the websockets library's extension: its ``PerMessageDeflate``
works on whole ``Frame`` objects of its own protocol, while our reader hands over the
payload chunk by chunk as it arrives (``reader.py``); and here one compressor serves every
connection of a process.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..exceptions import MessageTooBig, ProtocolError
from .frames import frame_header

__all__ = ["DeflateParams", "negotiate", "parse_extensions", "deflate", "deflate_frame", "Inflater", "TAIL",
           "EXTENSION"]

#: The extension's name.
EXTENSION = "permessage-deflate"
#: The end of a sync flush, which a sender strips from a compressed message (§7.2.1).
TAIL = b"\x00\x00\xff\xff"
_BITS = re.compile(r"^(?:[89]|1[0-5])$")


@dataclass(frozen=True)
class DeflateParams:
    """What one connection agreed: how we compress its messages.

    Attributes:
        window_bits: our compressor's window (``server_max_window_bits``), 9-15.
        level: zlib's compression level, 1-9.
        threshold: messages shorter than this many bytes go out uncompressed.
    """

    window_bits: int
    level: int
    threshold: int


def parse_extensions(header: str) -> List[Tuple[str, List[Tuple[str, Optional[str]]]]]:
    """``Sec-WebSocket-Extensions`` as ``[(name, [(parameter, value or None), ...]), ...]``."""
    offers = []
    for item in header.split(","):
        parts = [part.strip() for part in item.split(";")]
        if not parts[0]:
            continue
        params: List[Tuple[str, Optional[str]]] = []
        for part in parts[1:]:
            if not part:
                continue
            key, equals, value = part.partition("=")
            params.append((key.strip().lower(), value.strip().strip('"') if equals else None))
        offers.append((parts[0].lower(), params))
    return offers


def negotiate(header: str, window_bits: int = 15, level: int = 1, threshold: int = 0
              ) -> Optional[Tuple[str, DeflateParams]]:
    """Accept the first permessage-deflate offer in ``header`` we can honour.

    Returns:
        (the response header's value, the agreed parameters), or None: no offer we accept
        (the connection goes on uncompressed).
    """
    for name, params in parse_extensions(header):
        if name != EXTENSION:
            continue
        server_max: Optional[int] = None
        seen = set()
        valid = True
        for key, value in params:
            if key in seen:
                valid = False  # a parameter given twice (§7, the offer is declined)
            seen.add(key)
            if key in ("server_no_context_takeover", "client_no_context_takeover"):
                valid = valid and value is None
            elif key == "server_max_window_bits":
                valid = valid and value is not None and bool(_BITS.match(value))
                if valid and value is not None:
                    server_max = int(value)
            elif key == "client_max_window_bits":
                # the client can be told a smaller window; we need not: we inflate with 15 bits
                valid = valid and (value is None or bool(_BITS.match(value)))
            else:
                valid = False
        if not valid:
            continue
        bits = window_bits if server_max is None else min(window_bits, server_max)
        if bits < 9:
            continue  # zlib cannot deflate with a 256-byte window (it makes 8 into 9): the next offer
        response = f"{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
        if server_max is not None or bits < 15:
            response += f"; server_max_window_bits={bits}"
        return response, DeflateParams(bits, level, threshold)
    return None


_compressors: Dict[Tuple[int, int], zlib._Compress] = {}


def deflate(payload: bytes, params: DeflateParams) -> bytes:
    """``payload`` compressed alone (no reference to an earlier message), tail stripped."""
    key = (params.window_bits, params.level)
    compressor = _compressors.get(key)
    if compressor is None:
        compressor = _compressors[key] = zlib.compressobj(params.level, zlib.DEFLATED, -params.window_bits)
    # Z_FULL_FLUSH ends the message on a byte boundary and forgets it: the next message is compressed alone
    data = compressor.compress(payload) + compressor.flush(zlib.Z_FULL_FLUSH)
    return data[:-4] if data.endswith(TAIL) else data


def deflate_frame(opcode: int, payload: bytes, params: DeflateParams) -> bytes:
    """A final frame of ``payload`` compressed (RSV1 set)."""
    data = deflate(payload, params)
    return frame_header(opcode, len(data), rsv1=True) + data


class Inflater:
    """Inflates one compressed message as its chunks arrive, never past ``limit`` bytes.

    Args:
        limit: the largest inflated message (``max_message_size``).
    """

    __slots__ = ("left", "limit", "_inflater")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Inflated bytes the message may still grow by.
        self.left = limit
        self._inflater = zlib.decompressobj(-15)  # the largest window: any client's fits

    def feed(self, chunk: bytes, final: bool) -> bytes:
        """The inflated bytes of ``chunk`` (with the tail after the last one).

        Raises:
            MessageTooBig: the message inflates past the limit; at most one byte past it
                was made (a small frame that inflates to gigabytes costs nothing more).
            ProtocolError: the data is not deflate.
        """
        inflater = self._inflater
        try:
            out = inflater.decompress(chunk, self.left + 1) if chunk else b""
            if not inflater.unconsumed_tail and final and len(out) <= self.left:
                out += inflater.decompress(TAIL, self.left + 1 - len(out))
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}") from None
        if inflater.unconsumed_tail or len(out) > self.left:
            raise MessageTooBig(f"compressed message inflates over max_message_size ({self.limit} bytes)")
        self.left -= len(out)
        return out
