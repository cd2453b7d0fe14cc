"""Waiting between reconnections: capped, doubling, optionally jittered delays.

Every link that reconnects (a worker's broker links, the hub links, the Redis subscriber
and publisher) waits by one :class:`Backoff`: from :data:`RECONNECT_MIN`, doubled after
each failure, up to :data:`RECONNECT_MAX`, and back to the minimum once connected.
"""
from __future__ import annotations

import random

import gevent

__all__ = ["Backoff", "RECONNECT_MIN", "RECONNECT_MAX"]

#: Seconds before the first reconnection attempt; doubled after each failure...
RECONNECT_MIN = 0.05
#: ... up to this (a restarted peer is joined again within about a second).
RECONNECT_MAX = 1.0


class Backoff:
    """The delay before the next attempt of one link.

    Args:
        jitter: wait a random part (half to all) of each delay: after a Redis restart,
            every worker of every server would otherwise reconnect at the same instant.
    """

    __slots__ = ("delay", "jitter")

    def __init__(self, jitter: bool = False) -> None:
        #: The delay before the next attempt.
        self.delay = RECONNECT_MIN
        self.jitter = jitter

    @property
    def first(self) -> bool:
        """No attempt failed since the link was last up (worth a warning; later ones are not)."""
        return self.delay == RECONNECT_MIN

    def reset(self) -> None:
        """The link is up: the next failure waits the minimum again."""
        self.delay = RECONNECT_MIN

    def wait(self) -> None:
        """Sleep the current delay (jittered), then double it, up to the cap."""
        gevent.sleep(self.take())

    def take(self) -> float:
        """The current delay (jittered), for whoever waits without sleeping; doubles it, up to the cap."""
        delay = random.uniform(self.delay / 2, self.delay) if self.jitter else self.delay
        self.delay = min(self.delay * 2, RECONNECT_MAX)
        return delay
