"""Counters of one worker's WebSocket server: plain integers, bumped on the hot paths at
the cost of an attribute increment; the metrics exporter (``process/metrics.py``) reads them."""
from __future__ import annotations

from typing import Dict

__all__ = ["ServerStats"]


class ServerStats:
    """What one worker's WebSocket server counted since it started."""

    __slots__ = ("messages_in", "messages_out", "slow_consumer_closes", "dropped", "refused")

    def __init__(self) -> None:
        #: Messages received from clients.
        self.messages_in = 0
        #: Messages sent to one client (send(), replies); deliveries of publishes are the hub's.
        self.messages_out = 0
        #: Sockets closed because their client did not read (a full outbox).
        self.slow_consumer_closes = 0
        #: Messages dropped for a client that did not read (outbox_overflow="drop").
        self.dropped = 0
        #: Refused upgrades and requests, by the rule that refused them.
        self.refused: Dict[str, int] = {}

    def refuse(self, reason: str) -> None:
        """Count a refusal by its rule (origin, handshake, path, verify, headers, timeout)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
