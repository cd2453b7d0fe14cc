"""Which local subscribers each channel has: a pure registry, no I/O."""
from __future__ import annotations

from typing import Collection, Dict, Generic, Hashable, List, TypeVar

__all__ = ["ChannelRegistry"]

M = TypeVar("M", bound=Hashable)


class ChannelRegistry(Generic[M]):
    """channel -> subscribers, in subscription order.

    :meth:`add` and :meth:`discard` report when a channel opens (its first
    subscriber arrives) and closes (its last one leaves), which drives
    onChannelOpen/onChannelClose and the interest declared to other processes.
    """

    __slots__ = ("_members",)

    def __init__(self) -> None:
        self._members: Dict[str, Dict[M, None]] = {}

    def add(self, channel: str, member: M) -> bool:
        """Add ``member`` to ``channel``; True if the channel just opened."""
        members = self._members.get(channel)
        if members is None:
            self._members[channel] = {member: None}
            return True
        members[member] = None
        return False

    def discard(self, channel: str, member: M) -> bool:
        """Remove ``member`` from ``channel``; True if the channel just closed."""
        members = self._members.get(channel)
        if members is None or member not in members:
            return False
        del members[member]
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
