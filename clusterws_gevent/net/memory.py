"""A worker-wide budget for what clients make it hold: incoming messages being assembled,
decoded and handled.

One socket's message is bounded (``max_message_size``), but many sockets at once are not:
ten sockets each sending 1 MiB of ``[{},{},...]`` to a listener that blocks made a worker
hold 189 MiB more (the decoded objects take 36 times the text). Every large message
reserves what it will cost here first: the bytes of a message being assembled as they
arrive, then, once complete, an estimate of its decoded size (:func:`decoded_cost`), given
back when its listeners returned. What does not fit is refused (the socket is closed with
1013, "try again later"), so the worker's peak stays under the budget whatever the clients do.
"""
from __future__ import annotations

from typing import Union

__all__ = ["MessageMemory", "decoded_cost", "SMALL_MESSAGE"]

#: Messages up to this size are not accounted: each decodes to a few dozen KiB at most,
#: and the echo path stays free of the count.
SMALL_MESSAGE = 4096


def decoded_cost(message: Union[str, bytes]) -> int:
    """An upper estimate, in bytes, of what a message (a text, or binary data a ``message``
    listener may decode) and its JSON value take in memory: the text, a container (64 bytes)
    per ``[``/``{``, a value and its slot (40) per ``,``, a string's header (24) per quote
    (measured: 1 MiB of ``[{},{}...]`` decodes to 38 MB, estimated 55; 1 MiB of 110,000 short
    strings to 7 MB, estimated 11)."""
    if isinstance(message, str):
        return (len(message) + 64 * (message.count("[") + message.count("{")) + 40 * message.count(",")
                + 24 * message.count('"'))
    return (len(message) + 64 * (message.count(b"[") + message.count(b"{")) + 40 * message.count(b",")
            + 24 * message.count(b'"'))


class MessageMemory:
    """Bytes reserved by the messages a worker holds (see the module docstring).

    Args:
        limit: bytes that may be reserved at once.
    """

    __slots__ = ("limit", "used", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        #: Reservations refused since the start (each closed a socket).
        self.refused = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) if they do not fit."""
        if self.used + size > self.limit:
            self.refused += 1
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        """Give back ``size`` bytes reserved before."""
        self.used -= size
