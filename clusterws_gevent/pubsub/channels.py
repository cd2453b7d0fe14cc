"""Which local subscribers each channel has: a pure registry, no I/O."""
from __future__ import annotations

from typing import Any, Collection, Dict, Generic, Hashable, List, Optional, TypeVar

__all__ = ["ChannelRegistry", "channel_name_error"]


def channel_name_error(name: Any, max_bytes: int) -> Optional[str]:
    """The rule ``name`` breaks as a channel name, or None if it is a valid one.

    A channel name is a non-empty ``str`` without NUL, encodable as UTF-8 (no lone
    surrogates: JSON can carry them, but no broker, Redis or log can), of at most
    ``max_bytes`` bytes (``websocket_options.max_channel_length``).
    """
    if not isinstance(name, str):
        return "a channel name must be a string"
    if not name:
        return "a channel name must not be empty"
    if "\x00" in name:  # the join and leave events of channel X travel on X + NUL (pubsub/hub.py)
        return "a channel name must not hold NUL (U+0000)"
    if len(name) > max_bytes:  # every character is at least one byte
        return f"longer than max_channel_length ({max_bytes} bytes)"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not encodable as UTF-8 (a lone surrogate)"
    if size > max_bytes:
        return f"longer than max_channel_length ({max_bytes} bytes)"
    return None

M = TypeVar("M", bound=Hashable)


class ChannelRegistry(Generic[M]):
    """channel -> subscribers, in subscription order.

    :meth:`add` and :meth:`discard` report when a channel opens (its first
    subscriber arrives) and closes (its last one leaves), which drives
    onChannelOpen/onChannelClose and the interest declared to other processes.
    """

    __slots__ = ("_members", "memberships")

    def __init__(self) -> None:
        self._members: Dict[str, Dict[M, None]] = {}
        #: Subscriptions in all channels (kept as they change: monitoring never walks the sockets).
        self.memberships = 0

    def add(self, channel: str, member: M) -> bool:
        """Add ``member`` to ``channel``; True if the channel just opened."""
        members = self._members.get(channel)
        if members is None:
            self._members[channel] = {member: None}
            self.memberships += 1
            return True
        if member not in members:
            members[member] = None
            self.memberships += 1
        return False

    def discard(self, channel: str, member: M) -> bool:
        """Remove ``member`` from ``channel``; True if the channel just closed."""
        members = self._members.get(channel)
        if members is None or member not in members:
            return False
        del members[member]
        self.memberships -= 1
        if members:
            return False
        del self._members[channel]
        return True

    def members(self, channel: str) -> Collection[M]:
        """The subscribers of ``channel`` (a live view: copy it before switching greenlets)."""
        members = self._members.get(channel)
        return members.keys() if members is not None else ()

    def channels(self) -> List[str]:
        """Every channel with at least one subscriber."""
        return list(self._members)

    def __contains__(self, channel: object) -> bool:
        return channel in self._members

    def __len__(self) -> int:
        return len(self._members)
