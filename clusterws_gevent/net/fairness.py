"""Taking turns on the event loop: a read loop yields after a budget of work.

gevent's ``recv`` returns at once, without switching greenlets, while data is
waiting. A peer that sends faster than we parse would keep its read loop
running: no other socket, ping, publish flush or heartbeat would run (measured:
one flooding client raised another client's echo latency from 0.5 ms to 4.2 s,
and the master killed the worker for missing its heartbeat).

So every read loop spends a :class:`ReadBudget`: bytes read, plus a fixed cost
per message or frame handled. When it is spent, the loop waits for one turn of
the event loop that goes through the I/O poll. ``gevent.sleep(0)`` is not
enough: it re-runs a greenlet that keeps rescheduling itself for many rounds
before the loop polls I/O (measured p99 665 ms with a ``sleep(0)`` every 64
KiB); a zero-delay timer fires only after the poll (p99 8-14 ms every 16 KiB).
"""
from __future__ import annotations

from gevent import get_hub

__all__ = ["ReadBudget", "yield_to_io", "READ_BUDGET", "MESSAGE_COST"]

#: Bytes a read loop may handle between two turns of the event loop.
READ_BUDGET = 16 << 10
#: What one message (or broker frame) costs of the budget, besides its bytes:
#: 64 small messages per turn, so that work per message (listeners, subscribe
#: requests) is bounded too, not only bytes.
MESSAGE_COST = 256


def yield_to_io() -> None:
    """Let every other greenlet and every ready socket run once, then come back.

    A timer of zero seconds fires after the event loop's next I/O poll (which,
    with the timer due, does not block), unlike ``gevent.sleep(0)``.
    """
    hub = get_hub()
    timer = hub.loop.timer(0.0)
    try:
        hub.wait(timer)
    finally:
        timer.close()


class ReadBudget:
    """What a read loop may still do before it yields (see the module docstring)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = READ_BUDGET

    def spend(self, nbytes: int) -> None:
        """Count ``nbytes`` of work; yield to the event loop once the budget is spent."""
        self.left -= nbytes
        if self.left <= 0:
            self.left = READ_BUDGET
            yield_to_io()
