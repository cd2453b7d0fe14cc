"""Who is subscribed to each channel with presence, where a channel has one owner: the process
in ``Mode.Single``, the channel's broker in ``Mode.Scale`` (Redis keeps its own, with a ttl:
``scale/redis_scripts.py``).

An entry is a socket's id and its ``info`` (``{"user": ...}``, JSON bytes, as the socket's
worker encoded it), with its *owner*: on a broker, the link of the worker that declared it,
so that a worker's entries go at once when its link does (a crashed worker leaves nobody
behind). Pure bookkeeping, no I/O.
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, List, Optional, Tuple

__all__ = ["PresenceStore", "stats"]


class PresenceStore:
    """Presence entries by channel."""

    __slots__ = ("_channels", "_by_owner")

    def __init__(self) -> None:
        self._channels: Dict[str, Dict[str, Tuple[bytes, Hashable]]] = {}
        self._by_owner: Dict[Hashable, Dict[Tuple[str, str], None]] = {}

    def join(self, channel: str, socket_id: str, info: bytes, owner: Hashable = None) -> bool:
        """Record ``socket_id`` in ``channel``; False if it was there already."""
        entries = self._channels.setdefault(channel, {})
        known = socket_id in entries
        if known and entries[socket_id][1] != owner:
            self._by_owner.get(entries[socket_id][1], {}).pop((channel, socket_id), None)
        entries[socket_id] = (info, owner)
        self._by_owner.setdefault(owner, {})[(channel, socket_id)] = None
        return not known

    def leave(self, channel: str, socket_id: str) -> Optional[bytes]:
        """Forget ``socket_id`` in ``channel``; its info, or None if it was not there."""
        entries = self._channels.get(channel)
        if entries is None or socket_id not in entries:
            return None
        info, owner = entries.pop(socket_id)
        if not entries:
            del self._channels[channel]
        owned = self._by_owner.get(owner)
        if owned is not None:
            owned.pop((channel, socket_id), None)
            if not owned:
                del self._by_owner[owner]
        return info

    def leave_owner(self, owner: Hashable) -> List[Tuple[str, str, bytes]]:
        """Forget every entry of ``owner`` (a worker's link went down); returns them."""
        gone = []
        for channel, socket_id in list(self._by_owner.pop(owner, {})):
            entries = self._channels.get(channel)
            if entries is not None and socket_id in entries:
                gone.append((channel, socket_id, entries.pop(socket_id)[0]))
                if not entries:
                    del self._channels[channel]
        return gone

    def get(self, channel: str) -> Dict[str, bytes]:
        """``{socket id: info}`` of ``channel``."""
        return {socket_id: info for socket_id, (info, _) in self._channels.get(channel, {}).items()}

    def channels(self) -> List[str]:
        """The channels with at least one entry."""
        return list(self._channels)

    def __len__(self) -> int:
        return sum(map(len, self._channels.values()))


def stats(entries: Dict[str, Any]) -> Dict[str, int]:
    """``{"clients": n, "users": m}`` of decoded presence entries: m counts distinct users
    (``info["user"]``), sockets without a user (None) not among them."""
    users = {repr(info.get("user")) for info in entries.values() if isinstance(info, dict)
             and info.get("user") is not None}
    return {"clients": len(entries), "users": len(users)}
