"""Values more than one layer relies on, in one place (the lowest layer: imports nothing)."""
from __future__ import annotations

from typing import Union

__all__ = ["BACKLOG", "LINK_OUTBOX", "BytesLike"]

#: The listen backlog of every listening socket (``net.sockets.listen_tcp``: a worker's, the master's
#: shared one, the brokers', the hub's).
BACKLOG = 2048

#: Bytes a broker or hub link may hold back for a slow peer before it is dropped: links
#: carry every worker's traffic, so far more than one client's ``max_outbox_size``.
LINK_OUTBOX = 64 << 20

#: What the frame and mask functions accept as bytes.
BytesLike = Union[bytes, bytearray, memoryview]
