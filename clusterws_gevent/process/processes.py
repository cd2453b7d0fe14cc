"""The master's children and what it does to processes: the seam of its unit tests.

:class:`Processes` forks, signals and watches children and reads the clock; the
master (``process/master.py``) only decides. Its tests (``tests/unit/test_master.py``)
give it a fake that records what it was asked and moves a clock of its own, as
gunicorn's ``tests/test_arbiter.py`` replaces the arbiter's collaborators.
"""
from __future__ import annotations

import enum
import os
import tempfile
import time
from typing import Any, Optional, Protocol, Tuple, Union

import gevent
import gevent.os
from gevent.socket import wait_read

from ..net.sockets import Address
from .events import ChildReady, Event

__all__ = ["Kind", "WORKER", "BROKER", "HUB", "Child", "Processes", "Parent", "Slot"]

#: A child's place: a worker's id, a broker's address, the hub's port.
Slot = Union[int, Address]


class Kind(enum.Enum):
    """What a child process is."""

    WORKER = "worker"
    BROKER = "broker"
    HUB = "hub"


WORKER, BROKER, HUB = Kind.WORKER, Kind.BROKER, Kind.HUB


class Child:
    """A forked process: a worker (``slot`` = worker id), a broker (``slot`` = its address) or the hub."""

    __slots__ = ("kind", "slot", "pid", "generation", "started", "ready", "stopping", "kill_at", "killed",
                 "heartbeat", "hung", "replaces", "ready_fd", "note")

    def __init__(self, kind: Kind, slot: Slot, pid: int, generation: int, heartbeat: Any, ready_fd: int,
                 started: float) -> None:
        self.kind = kind
        self.slot = slot
        self.pid = pid
        self.generation = generation  # the SIGHUP count when it was forked: the code it runs
        self.started = started
        self.ready = False
        self.stopping = False  # we asked it to stop: its exit is expected
        self.kill_at: Optional[float] = None  # SIGKILL if still alive then
        self.killed = False
        self.heartbeat = heartbeat  # an unlinked file the worker touches (None for brokers)
        self.hung = False  # killed by the master for giving no sign of life
        self.replaces: Optional[Child] = None  # the older worker it takes over from (a reload)
        self.ready_fd = ready_fd  # the master's end of its ready pipe (-1 once closed)
        self.note = ""  # how its ready line ends (" (restarted)", " (added)")

    @property
    def name(self) -> str:
        """``worker 2`` or ``broker /run/.../broker-1.sock``."""
        return f"{self.kind.value} {self.slot}"


class Parent(Protocol):
    """What :class:`Processes` needs of the master."""

    worker_timeout: float

    def child_main(self, kind: Kind, slot: Slot, ready_w: int, heartbeat: Any) -> int:
        """What a forked child runs; returns its exit code."""

    def loop_child_exited(self, watcher: Any) -> None:
        """Event-loop callback: a child exited."""

    def put_event(self, event: Event) -> None:
        """Queue an event for the master's loop."""


class Processes:
    """What the master does to processes and asks of the clock: the seam its unit tests
    replace (``tests/unit/test_master.py``), as gunicorn's tests replace the arbiter's."""

    def clock(self) -> float:
        """Seconds of a monotonic clock."""
        return time.monotonic()

    def spawn(self, master: Parent, kind: Kind, slot: Slot) -> Tuple[int, int, Any]:
        """Fork a child that runs ``master.child_main``; returns (pid, the master's end of its
        ready pipe, its heartbeat file or None). Its exit and its ready byte become events."""
        ready_r, ready_w = os.pipe()
        # lives as long as the worker; closed when it is reaped
        heartbeat = tempfile.TemporaryFile() if kind is WORKER and master.worker_timeout else None  # noqa: SIM115
        pid = gevent.os.fork_and_watch(master.loop_child_exited)
        if pid == 0:  # the child; gevent re-initialised its hub in fork
            os.close(ready_r)
            os._exit(master.child_main(kind, slot, ready_w, heartbeat))
        os.close(ready_w)
        return pid, ready_r, heartbeat

    def watch_ready(self, master: Parent, child: Child) -> Any:
        """A greenlet that queues ``ChildReady`` once ``child`` wrote its ready byte."""
        return gevent.spawn(self._watch_ready, master, child)

    @staticmethod
    def _watch_ready(master: Parent, child: Child) -> None:
        fd = child.ready_fd
        try:
            wait_read(fd)
            if child.ready_fd == fd and os.read(fd, 1):
                master.put_event(ChildReady(child.pid))
        except OSError:
            pass  # closed meanwhile: the child is gone

    def signal(self, pid: int, sig: int) -> None:
        """Send ``sig`` to ``pid`` (a child not reaped yet: its PID is not anyone else's)."""
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def heartbeat_age(self, heartbeat: Any) -> float:
        """Seconds since the worker last touched its heartbeat file."""
        return time.time() - os.fstat(heartbeat.fileno()).st_mtime

    def release(self, child: Child) -> None:
        """Close the master's handles on ``child`` (its heartbeat file, its ready pipe)."""
        if child.heartbeat is not None:
            child.heartbeat.close()
        if child.ready_fd >= 0:
            os.close(child.ready_fd)
            child.ready_fd = -1
