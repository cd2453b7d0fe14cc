"""Connections balanced by load over the workers that share a listening socket.

A WebSocket lives for hours, so whichever worker wins the race for ``accept``
carries that connection for its whole life (HAProxy recommends ``leastconn``
for WebSockets for this reason). On the shared socket alone, 400 connections
opened one after another over 4 workers split 47/101/114/138, and a worker
restarted among busy ones took almost none of the next connections.

Here each worker publishes its number of open connections in a table shared
by every process of the cluster (an anonymous ``mmap`` the master makes before
forking), and accepts only while it holds no more than the least loaded live
worker plus ``slack``. The others leave the shared queue alone, so a connection
goes to a least loaded worker; the queue is still shared, so a stopping worker
strands nothing (SO_REUSEPORT would). A worker whose entry is stale (its event
loop stuck for a second, or dead) no longer counts, so nobody waits for it.
"""
from __future__ import annotations

import mmap
import struct
import time
from typing import Any, Optional

import gevent
from gevent.event import Event

__all__ = ["LoadTable", "AcceptGate", "MAX_WORKERS", "STALE_AFTER"]

#: Worker slots in the table (a worker id is its slot, modulo this).
MAX_WORKERS = 256
#: Seconds after which a worker's entry no longer counts (its loop is stuck, or it is gone).
STALE_AFTER = 1.0
#: Seconds between refreshes of an accepting worker's entry...
REFRESH = 0.25
#: ... and between re-checks of a worker that stopped accepting: while every worker holds
#: back, connections wait in the kernel's queue, so this bounds how long a burst stalls
#: (at 0.25 s, opening 1,000 connections at once took 31 s; a re-check costs ~10 µs).
RECHECK = 0.002

_ENTRY = struct.Struct("=dq")  # monotonic time of the last update, open connections (-1: not accepting)


class LoadTable:
    """Each worker's open connections, shared by every process of the cluster.

    Made by the master before it forks; workers write their own entry and read
    the others'. ``time.monotonic()`` is the same clock in every process of a host.
    """

    def __init__(self, size: int = MAX_WORKERS) -> None:
        self.size = size
        self._map = mmap.mmap(-1, size * _ENTRY.size)

    def set(self, slot: int, connections: int) -> None:
        """Publish ``connections`` for ``slot`` (-1: this worker takes no connections)."""
        _ENTRY.pack_into(self._map, (slot % self.size) * _ENTRY.size, time.monotonic(), connections)

    def clear(self, slot: int) -> None:
        """Forget ``slot`` (its worker is gone)."""
        _ENTRY.pack_into(self._map, (slot % self.size) * _ENTRY.size, 0.0, -1)

    def least_loaded(self, now: float) -> Optional[int]:
        """The fewest connections of a live, accepting worker; None if there is none."""
        least: Optional[int] = None
        for stamp, connections in _ENTRY.iter_unpack(self._map):
            if connections >= 0 and now - stamp < STALE_AFTER and (least is None or connections < least):
                least = connections
        return least


class AcceptGate:
    """Opens a worker's accept watcher only while the worker is among the least loaded.

    Args:
        table: the cluster's load table.
        slot: this worker's entry (its id).
        server: the worker's gevent server (``start_accepting``/``stop_accepting``).
        slack: connections a worker may hold over the least loaded one and still accept.
    """

    def __init__(self, table: LoadTable, slot: int, server: Any, slack: int = 1) -> None:
        self.table = table
        self.slot = slot
        self.server = server
        self.slack = slack
        self.connections = 0
        #: The worker's accept watcher is open.
        self.accepting = True
        self._closed = False
        self._ticker: Any = None
        self._changed = Event()  # wakes the ticker when the gate closes: it re-checks often then

    def start(self) -> None:
        """Publish this worker's entry and keep it fresh."""
        self.table.set(self.slot, self.connections)
        self._ticker = gevent.spawn(self._tick)

    def close(self) -> None:
        """This worker takes no more connections (it is stopping)."""
        self._closed = True
        self.table.set(self.slot, -1)
        if self._ticker is not None:
            self._ticker.kill(block=False)

    def opened(self) -> None:
        """A connection was accepted."""
        self.connections += 1
        self._update()

    def closed(self) -> None:
        """A connection ended."""
        self.connections -= 1
        self._update()

    def _update(self) -> None:
        if self._closed:
            return
        self.table.set(self.slot, self.connections)
        least = self.table.least_loaded(time.monotonic())
        accepting = least is None or self.connections <= least + self.slack
        if accepting == self.accepting:
            return
        self.accepting = accepting
        if not accepting:
            self.server.stop_accepting()
            self._changed.set()
        elif self.server.started:
            self.server.start_accepting()

    def _tick(self) -> None:
        while not self._closed:
            self._update()
            if self.accepting:
                self._changed.clear()
                self._changed.wait(REFRESH)
            else:
                gevent.sleep(RECHECK)
