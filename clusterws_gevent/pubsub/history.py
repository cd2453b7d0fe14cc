"""Channel histories kept where a channel has one owner: the process in ``Mode.Single``, the
channel's broker in ``Mode.Scale`` (Redis keeps its own: ``scale/redis_history.py``).

Each channel with history (``channel_options``) has a *stream*: its messages numbered by an
*offset* that grows by one per message, and an *epoch*, a random name drawn when the stream
begins. A stream ends (and the next publish begins a new one, with a new epoch and offsets
from 1) when the channel had no publish for ``history_ttl`` seconds, or when the owner needs
the room (``max_history_bytes``: the channel published to least recently goes first), or
when the owner itself ends (a broker restarted): an epoch names a stream, so a client's
``(epoch, offset)`` from a lost one can never be taken for a position in the new one.

Pure bookkeeping, no I/O: the owner calls it, with its own clock.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict, deque
from typing import Callable, Deque, List, NamedTuple, Optional, Sequence, Tuple

from ..options import ChannelPolicy

__all__ = ["HistoryStore", "Stream", "HistoryRead", "new_epoch"]

#: What one kept message costs beyond its bytes (its tuple, its slot in the deque).
ENTRY_COST = 96


def new_epoch() -> str:
    """A fresh epoch: 16 hex digits, never reused in practice."""
    return os.urandom(8).hex()


class HistoryRead(NamedTuple):
    """What a history read returns."""

    #: The stream's epoch.
    epoch: str
    #: The offset of its latest message (0 when nothing was published in this epoch).
    offset: int
    #: ``(offset, JSON bytes)`` oldest first: those after the ``since`` asked for, at most ``limit``.
    messages: List[Tuple[int, bytes]]


class Stream:
    """One channel's kept messages."""

    __slots__ = ("epoch", "offset", "messages", "size", "last_publish")

    def __init__(self, now: float) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.messages: Deque[Tuple[int, bytes]] = deque()
        self.size = 0  # bytes held, ENTRY_COST each included
        self.last_publish = now


class HistoryStore:
    """The streams of the channels one owner numbers.

    Args:
        policy: the channel's options (``ChannelOptions.policy``).
        max_bytes: what all the streams may hold.
        clock: seconds, monotonic.
    """

    def __init__(self, policy: Callable[[str], ChannelPolicy], max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.clock = clock
        self._streams: OrderedDict[str, Stream] = OrderedDict()  # least recently published first
        self.size = 0
        #: Streams ended to make room (``max_history_bytes``), since the start.
        self.evicted = 0

    def append(self, channel: str, messages: Sequence[bytes]) -> Tuple[str, int]:
        """Number ``messages`` of ``channel`` and keep its last ``history_size``; returns
        (epoch, offset of the first of them)."""
        stream = self._stream(channel)
        policy = self.policy(channel)
        now = self.clock()
        first = stream.offset + 1
        kept = stream.messages
        before = stream.size
        for message in messages:
            stream.offset += 1
            kept.append((stream.offset, message))
            stream.size += len(message) + ENTRY_COST
        excess = len(kept) - policy.history_size
        while excess > 0:
            _, old = kept.popleft()
            stream.size -= len(old) + ENTRY_COST
            excess -= 1
        self.size += stream.size - before
        stream.last_publish = now
        self._streams.move_to_end(channel)
        self._make_room(keep=channel)
        return stream.epoch, first

    def read(self, channel: str, since: Optional[int] = None, limit: Optional[int] = None) -> HistoryRead:
        """The channel's epoch, latest offset, and the kept messages after ``since`` (every kept
        one without it), at most ``limit`` of them (the latest, when ``since`` is None). A
        channel without a stream gets one (empty), so that a subscriber has an epoch to hold."""
        stream = self._stream(channel)
        kept = stream.messages
        if since is None:
            chosen = list(kept) if limit is None else list(kept)[-limit:] if limit > 0 else []
        else:
            start = len(kept) - (stream.offset - since) if since < stream.offset else len(kept)
            chosen = list(kept)[max(0, start):]
            if limit is not None:
                chosen = chosen[:max(0, limit)]
        return HistoryRead(stream.epoch, stream.offset, chosen)

    def position(self, channel: str) -> Tuple[str, int]:
        """The channel's (epoch, latest offset)."""
        stream = self._stream(channel)
        return stream.epoch, stream.offset

    def expire(self) -> int:
        """End the streams idle for their ``history_ttl``; returns how many ended."""
        now = self.clock()
        ended = [channel for channel, stream in self._streams.items()
                 if now - stream.last_publish >= self.policy(channel).history_ttl]
        for channel in ended:
            self._drop(channel)
        return len(ended)

    def forget(self, channel: str) -> None:
        """End ``channel``'s stream now (its next publish or read begins a new epoch)."""
        if channel in self._streams:
            self._drop(channel)

    def __len__(self) -> int:
        return len(self._streams)

    def _stream(self, channel: str) -> Stream:
        stream = self._streams.get(channel)
        now = self.clock()
        if stream is not None and now - stream.last_publish >= self.policy(channel).history_ttl:
            self._drop(channel)  # idle past its ttl: what it held is gone, and so is its epoch
            stream = None
        if stream is None:
            stream = self._streams[channel] = Stream(now)
        return stream

    def _drop(self, channel: str) -> None:
        stream = self._streams.pop(channel)
        self.size -= stream.size

    def _make_room(self, keep: str) -> None:
        while self.size > self.max_bytes and len(self._streams) > 1:
            oldest = next(iter(self._streams))
            if oldest == keep:
                break
            self._drop(oldest)
            self.evicted += 1
