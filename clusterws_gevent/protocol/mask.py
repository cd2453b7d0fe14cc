"""RFC 6455 §5.3 masking: XOR of the payload with a 4-byte key.

websockets' C ``apply_mask`` when it is there; otherwise the whole payload is
XORed as one integer (websockets' own fallback), never byte by byte.
"""
from __future__ import annotations

import sys
from typing import Callable

from ..constants import BytesLike

__all__ = ["apply_mask", "apply_mask_python", "rotate_mask"]



def apply_mask_python(data: BytesLike, mask: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask``, as one big integer."""
    size = len(data)
    if not size:
        return b""
    data_int = int.from_bytes(data, sys.byteorder)
    mask_repeated = mask * (size // 4) + mask[: size % 4]
    mask_int = int.from_bytes(mask_repeated, sys.byteorder)
    return (data_int ^ mask_int).to_bytes(size, sys.byteorder)


#: ``apply_mask(data, mask) -> bytes``: the C version when available.
apply_mask: Callable[[BytesLike, bytes], bytes]
try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets ships the C extension on our platforms
    apply_mask = apply_mask_python


def rotate_mask(mask: bytes, offset: int) -> bytes:
    """The mask to apply to payload bytes starting at ``offset`` in the frame."""
    shift = offset & 3
    return mask[shift:] + mask[:shift] if shift else mask
