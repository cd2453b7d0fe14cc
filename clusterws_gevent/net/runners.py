"""Greenlets lent to sockets that have something to do, instead of one per socket.

A greenlet waiting in ``recv`` costs about 7 KiB (a saved slice of the C stack,
and a page of CPython's frame stack of its own), most of the memory of an idle
WebSocket. A *parked* connection holds no greenlet: an event-loop watcher on
its file descriptor calls :meth:`Runners.run` when bytes arrive, and a runner
greenlet reads and handles them, then parks the connection again and waits
for the next one. A listener that blocks keeps its runner (the socket's later
messages wait for it, in order, as before); another runner takes the next
socket. Idle runners are kept, up to a bound, so a busy worker does not make
and drop a greenlet per message.
"""
from __future__ import annotations

from typing import Any, Callable, List

from gevent import get_hub
from greenlet import getcurrent, greenlet

from .loop_guard import hand_off

__all__ = ["Runners", "KEEP_IDLE"]

#: Idle runner greenlets kept for the next readable socket; more than this end.
KEEP_IDLE = 64


class Runners:
    """A stack of idle runner greenlets (the last one to finish goes first: its stack is warm)."""

    __slots__ = ("_idle", "keep_idle")

    def __init__(self, keep_idle: int = KEEP_IDLE) -> None:
        self._idle: List[greenlet] = []
        self.keep_idle = keep_idle

    def run(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work(*args)`` in a runner greenlet; called from an event-loop callback (the
        hub), the one switch such a callback makes (``loop_guard.hand_off``).

        ``work`` must catch its own exceptions: one escaping ends its runner and is
        reported by the hub.
        """
        runner = self._idle.pop() if self._idle else greenlet(self._serve, parent=get_hub())
        hand_off(runner, work, args)

    def _serve(self, work: Callable[..., None], args: Any) -> None:
        hub = get_hub()
        idle = self._idle
        while True:
            work(*args)
            work = args = None  # type: ignore[assignment]  # nothing of a finished job is kept alive
            if len(idle) >= self.keep_idle:
                return
            idle.append(getcurrent())
            work, args = hub.switch()

    def idle(self) -> int:
        """How many runner greenlets wait for work."""
        return len(self._idle)

