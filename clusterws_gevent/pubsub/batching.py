"""The publishes of one event-loop iteration, grouped per channel, handed over at its end.

A connector (brokers, Redis) sends one frame per channel for everything published while
the current greenlets ran, instead of one per message: a burst costs one write, and the
order per channel is kept.
"""
from __future__ import annotations

from typing import Callable, Dict, List

from gevent import get_hub

from ..net.loop_guard import on_loop

__all__ = ["IterationBatches"]


class IterationBatches:
    """Messages per channel, flushed by ``flush(batches)`` at the end of this loop iteration.

    Args:
        flush: called with ``{channel: [message, ...]}``, in the order channels first got a message.
    """

    __slots__ = ("_flush", "_pending", "_scheduled")

    def __init__(self, flush: Callable[[Dict[str, List[bytes]]], None]) -> None:
        self._flush = flush
        self._pending: Dict[str, List[bytes]] = {}
        self._scheduled = False

    def add(self, channel: str, message: bytes) -> None:
        """Queue ``message`` for ``channel``."""
        pending = self._pending.get(channel)
        if pending is None:
            self._pending[channel] = [message]
            if not self._scheduled:
                self._scheduled = True
                get_hub().loop.run_callback(self.loop_flush)
        else:
            pending.append(message)

    def discard(self) -> int:
        """Drop what waits (the link went down); returns how many messages."""
        dropped = sum(len(messages) for messages in self._pending.values())
        self._pending = {}
        return dropped

    @on_loop
    def loop_flush(self) -> None:
        """Event-loop callback: hand this iteration's batches over (the flush never blocks:
        a connector writes to an outbox or a queue)."""
        self._scheduled = False
        pending, self._pending = self._pending, {}
        if pending:
            self._flush(pending)
