"""``Mode.Scale``: the master process (gunicorn's arbiter, on gevent).

The master binds the port, forks the brokers, then the workers (which share the
listening socket), and logs one line per process once all are ready. Signals and
child exits are queued and handled one at a time by ``handle_<name>`` methods:

- SIGTERM, SIGINT: stop. Workers stop accepting and close every WebSocket with
  1001, brokers follow; anything still alive after the bound is killed.
- SIGHUP: replace the workers one at a time; each new worker is ready before the
  old one stops, so no connection is refused.
- SIGTTIN / SIGTTOU: one worker more / less.
- A child that dies unexpectedly is logged (SIGKILL: "perhaps out of memory?") and,
  with ``restart_on_fail``, restarted after a delay that doubles while it keeps
  crashing (capped).

Children exit by themselves when the master dies (the lifeline pipe).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
import weakref
from typing import Any, Dict, List, Optional, Tuple, Union

import gevent
import gevent.os
from gevent.queue import Queue
from gevent.socket import wait_read

from ..enums import Scaler
from ..exceptions import HaltServer
from ..log import Log
from ..net.sockets import Address
from ..options import Options
from .child import BROKER_BOOT_ERROR, ChildContext, run_broker_process, run_worker_process
from .single import GRACEFUL_TIMEOUT, warn_unless_patched
from .worker import BACKLOG, WORKER_BOOT_ERROR, raise_open_files_limit

__all__ = ["Master", "run_master", "READY_TIMEOUT", "STOP_TIMEOUT", "RESTART_DELAY_MIN", "RESTART_DELAY_MAX"]

#: Seconds a new process has to report ready.
READY_TIMEOUT = 30.0
#: Seconds stopping may take before the remaining children are killed.
STOP_TIMEOUT = GRACEFUL_TIMEOUT + 5.0
#: Delay before restarting a process that died; doubled while it keeps dying...
RESTART_DELAY_MIN = 0.1
#: ... up to this.
RESTART_DELAY_MAX = 10.0
#: A process that lived this long before dying counts as healthy: its delay starts over.
HEALTHY_AFTER = 10.0

_HANDLED = {signal.SIGTERM: "TERM", signal.SIGINT: "INT", signal.SIGHUP: "HUP", signal.SIGTTIN: "TTIN",
            signal.SIGTTOU: "TTOU"}


#: A child's place: a worker's id, or a broker's address.
Slot = Union[int, Address]


class Child:
    """A forked process: a worker (``slot`` = worker id) or a broker (``slot`` = its address)."""

    __slots__ = ("kind", "slot", "pid", "started", "ready", "stopping", "announce", "heartbeat", "hung")

    def __init__(self, kind: str, slot: Slot, pid: int, heartbeat: Any = None) -> None:
        self.kind = kind
        self.slot = slot
        self.pid = pid
        self.heartbeat = heartbeat  # an unlinked file the worker touches (None for brokers)
        self.hung = False  # killed by the master for giving no sign of life
        self.started = time.monotonic()
        self.ready = False
        self.stopping = False  # we asked it to stop: its exit is expected
        self.announce = ""  # log its ready line with this note once ready (" (restarted)")

    @property
    def name(self) -> str:
        """``worker 2`` or ``broker 9400``."""
        return f"{self.kind} {self.slot}"


class Master:
    """The master of ``Mode.Scale``.

    Args:
        options: validated options (``mode`` is ``Mode.Scale``).
        log: where to log.
    """

    def __init__(self, options: Options, log: Log) -> None:
        self.options = options
        self.log = log
        scale = options.scale_options
        self.worker_count = scale.workers
        self.broker_addresses: List[Address] = list(scale.default.brokers_ports or ())
        self.broker_count = scale.default.brokers
        self._runtime_dir: Optional[str] = None
        self.restart_on_fail = scale.restart_on_fail
        self.worker_timeout = scale.worker_timeout
        self.key = secrets.token_bytes(32)  # the cluster key: only our children know it
        self.children: Dict[int, Child] = {}
        self.events: Queue[Tuple[Any, ...]] = Queue()
        self.listener: Optional[socket.socket] = None
        self._lifeline_r, self._lifeline_w = os.pipe()
        self._delays: Dict[Tuple[str, Slot], float] = {}
        self._stopping = False
        self._reloading = False
        self._signal_handlers: List[Any] = []
        # The master's own greenlets: a forked child inherits them and must kill them
        # (one reading a sibling's ready pipe would swallow that sibling's ready byte).
        self._tasks: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, then handle signals and exits until stopped; returns the exit code."""
        self._signal_handlers = [gevent.signal_handler(sig, self.events.put, ("signal", name))
                                 for sig, name in _HANDLED.items()]
        try:
            self.listener = self._bind()
            if not self.broker_addresses:
                self.broker_addresses = self._private_broker_addresses()
            for address in self.broker_addresses:
                self._spawn("broker", address)
            self._wait_ready("broker")
            for worker_id in range(1, self.worker_count + 1):
                self._spawn("worker", worker_id)
            self._wait_ready("worker")
            self._log_ready()
            checked = time.monotonic()
            while not self._stopping:
                event = self._next_event(time.monotonic() + 1.0)
                if event is not None:
                    self._dispatch(event)
                if time.monotonic() - checked >= 1.0:
                    checked = time.monotonic()
                    self._check_heartbeats()
            return 0
        except HaltServer as exc:
            self.log.error("stopping: %s", exc.reason)
            return exc.exit_code
        finally:
            self._stop_children()
            for handler in self._signal_handlers:
                handler.cancel()
            if self._runtime_dir is not None:
                shutil.rmtree(self._runtime_dir, ignore_errors=True)

    def _private_broker_addresses(self) -> List[Address]:
        """Unix sockets in a directory only this user can enter (mkdtemp makes it 0700):
        no other app's brokers collide with ours, and no other user's process can take
        or reach a broker's address. Removed when the master exits."""
        self._runtime_dir = tempfile.mkdtemp(prefix="clusterws-")
        return [os.path.join(self._runtime_dir, f"broker-{index}.sock") for index in range(1, self.broker_count + 1)]

    def _bind(self) -> socket.socket:
        """The listening socket every worker shares (accepts are spread with max_accept=1).

        Measured against SO_REUSEPORT (a socket per worker, README "Processes"):
        SO_REUSEPORT spreads connection counts more evenly, but the connections queued
        on a worker's socket are stranded when that worker stops (a reload, SIGTTOU, a
        crash) unless the kernel migrates them (net.ipv4.tcp_migrate_req, off by
        default). With one shared queue any worker takes any connection: a rolling
        reload refuses none, and the least busy worker tends to accept first."""
        host = self.options.host or ""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, self.options.port))
        except OSError as exc:
            sock.close()
            raise HaltServer(f"cannot listen on {host or '*'}:{self.options.port}: {exc.strerror or exc}") from None
        sock.listen(BACKLOG)
        sock.setblocking(False)
        return sock

    def _log_ready(self) -> None:
        """One line per process, as the seed prints them."""
        self.log.info(">>> Master on: %d, PID: %d (Mode.Scale, %d worker(s), %d broker(s))", self.options.port,
                      os.getpid(), self.worker_count, len(self.broker_addresses))
        for kind in ("broker", "worker"):
            for child in sorted(self._alive(kind), key=lambda c: c.slot):
                self._log_line(child)

    def _log_line(self, child: Child, note: str = "") -> None:
        what = "Broker on" if child.kind == "broker" else "Worker"
        self.log.info(">>> %s: %s, PID: %d%s", what, child.slot, child.pid, note)

    def _next_event(self, deadline: float) -> Optional[Tuple[Any, ...]]:
        """The next queued event, or None once ``deadline`` (monotonic) has passed.

        Waiting with a timeout also keeps a timer in gevent's loop: child and signal
        watchers do not keep the hub alive, and a bare get() would end in LoopExit."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            event: Tuple[Any, ...] = self.events.get(timeout=remaining)
        except gevent.queue.Empty:
            return None
        return event

    def _dispatch(self, event: Tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "signal":
            getattr(self, "handle_" + event[1].lower())()
        elif kind == "exit":
            self._reap(event[1], event[2])
        elif kind == "ready":
            child = self.children.get(event[1])
            if child is not None:
                child.ready = True
                if child.announce:
                    self._log_line(child, child.announce)
        elif kind == "restart" and not self._stopping:
            self._spawn(event[1], event[2]).announce = " (restarted)"

    # -- children -------------------------------------------------------------------------------

    def _alive(self, kind: str) -> List[Child]:
        return [c for c in self.children.values() if c.kind == kind and not c.stopping]

    def _spawn(self, kind: str, slot: Slot) -> Child:
        ready_r, ready_w = os.pipe()
        # lives as long as the worker; closed in _reap
        heartbeat = tempfile.TemporaryFile() if kind == "worker" and self.worker_timeout else None  # noqa: SIM115
        pid = gevent.os.fork_and_watch(self._exited)
        if pid == 0:  # the child; gevent re-initialised its hub in fork
            os.close(ready_r)
            os._exit(self._child_main(kind, slot, ready_w, heartbeat.fileno() if heartbeat else -1))
        os.close(ready_w)
        child = self.children[pid] = Child(kind, slot, pid, heartbeat)
        self._tasks.add(gevent.spawn(self._watch_ready, pid, ready_r))
        self.log.debug("started %s, PID %d", child.name, pid)
        return child

    def _child_main(self, kind: str, slot: Slot, ready_w: int, heartbeat_fd: int) -> int:
        code = 1
        try:
            for task in list(self._tasks):
                task.kill(block=False)
            for handler in self._signal_handlers:
                handler.cancel()
            os.close(self._lifeline_w)  # only the master holds it: its death is our EOF
            context = ChildContext(ready_w, self._lifeline_r, self.key, self.log, heartbeat_fd)
            if kind == "broker":
                if self.listener is not None:
                    self.listener.close()
                code = run_broker_process(context, slot)
            else:
                code = run_worker_process(context, self.options, int(slot), self.listener, self.broker_addresses)
        except BaseException:  # noqa: B036 - a child must never return into the master's code
            self.log.exception("%s %s failed", kind, slot)
        return code

    def _exited(self, watcher: Any) -> None:
        self.events.put(("exit", watcher.pid, watcher.rstatus))

    def _watch_ready(self, pid: int, fd: int) -> None:
        try:
            wait_read(fd)
            if os.read(fd, 1):
                self.events.put(("ready", pid))
        finally:
            os.close(fd)

    def _wait_ready(self, kind: str) -> None:
        """Handle events until every process of ``kind`` is ready (or one fails to start)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(c.ready for c in self._alive(kind)):
            event = self._next_event(deadline)
            if event is None:
                raise HaltServer(f"{kind}s not ready within {READY_TIMEOUT:.0f}s", 1)
            if event[0] == "exit" and event[1] in self.children:
                child = self.children.pop(event[1])
                code = BROKER_BOOT_ERROR if kind == "broker" else WORKER_BOOT_ERROR
                raise HaltServer(f"{child.name} could not start ({describe_status(event[2])})", code)
            self._dispatch(event)
            if self._stopping:
                raise HaltServer("stopped while starting", 0)

    def _check_heartbeats(self) -> None:
        """Kill a worker whose event loop stopped beating (gunicorn's murder_workers)."""
        if not self.worker_timeout:
            return
        now = time.time()
        for child in self._alive("worker"):
            if child.heartbeat is None or not child.ready:
                continue
            silent = now - os.fstat(child.heartbeat.fileno()).st_mtime
            if silent > self.worker_timeout:
                self.log.error("%s (PID %d) gave no sign of life for %.0fs (a listener blocking its event loop?); "
                               "killing it", child.name, child.pid, silent)
                child.hung = True
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _reap(self, pid: int, status: int) -> None:
        child = self.children.pop(pid, None)
        if child is None:
            return
        if child.heartbeat is not None:
            child.heartbeat.close()
        if child.stopping or self._stopping:
            self.log.info("%s (PID %d) exited", child.name, pid)
            return
        level = self.log.error if os.WIFSIGNALED(status) else self.log.warning
        how = "killed for giving no sign of life" if child.hung else describe_status(status)
        level("%s (PID %d) died: %s", child.name, pid, how)
        if not self.restart_on_fail:
            self.log.error("%s is not restarted (restart_on_fail is off)", child.name)
            if not self._alive("worker"):
                raise HaltServer("no worker left", 1)
            return
        key = (child.kind, child.slot)
        lived = time.monotonic() - child.started
        delay = RESTART_DELAY_MIN if lived >= HEALTHY_AFTER else min(
            self._delays.get(key, RESTART_DELAY_MIN / 2) * 2, RESTART_DELAY_MAX)
        self._delays[key] = delay
        self.log.warning("restarting %s in %.1fs", child.name, delay)
        self._tasks.add(gevent.spawn_later(delay, self.events.put, ("restart", child.kind, child.slot)))

    def _terminate(self, child: Child) -> None:
        child.stopping = True
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _wait_exit(self, children: List[Child], timeout: float) -> bool:
        """Handle events until ``children`` have exited; False if some outlived ``timeout``."""
        deadline = time.monotonic() + timeout
        while any(c.pid in self.children for c in children):
            event = self._next_event(deadline)
            if event is None:
                return False
            if event[0] == "exit":
                self._reap(event[1], event[2])
            elif event[0] == "ready":
                self._dispatch(event)
            elif event[0] == "signal" and event[1] in ("TERM", "INT"):
                self._stopping = True
        return True

    def _stop_children(self) -> None:
        """Workers first (they close their WebSockets with 1001), then brokers; kill what outlives the bound."""
        self._stopping = True
        for kind in ("worker", "broker"):
            children = [c for c in self.children.values() if c.kind == kind]
            for child in children:
                self._terminate(child)
            if not self._wait_exit(children, STOP_TIMEOUT):
                for child in children:
                    if child.pid in self.children:
                        self.log.error("%s (PID %d) did not stop within %.0fs; killing it", child.name, child.pid,
                                       STOP_TIMEOUT)
                        try:
                            os.kill(child.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                self._wait_exit(children, 5.0)
        if self.listener is not None:
            self.listener.close()

    # -- signals ----------------------------------------------------------------------------------

    def handle_term(self) -> None:
        """Stop everything (graceful)."""
        self.log.info("SIGTERM: stopping")
        self._stopping = True

    def handle_int(self) -> None:
        """Ctrl-C: stop everything (graceful)."""
        self.log.info("SIGINT: stopping")
        self._stopping = True

    def handle_hup(self) -> None:
        """Replace the workers one at a time (rolling reload)."""
        if self._reloading:
            self.log.info("SIGHUP: a reload is already under way; ignored")
            return
        self._reloading = True
        try:
            self._reload()
        finally:
            self._reloading = False

    def _reload(self) -> None:
        self.log.info("SIGHUP: replacing %d worker(s) one at a time", len(self._alive("worker")))
        for old in sorted(self._alive("worker"), key=lambda c: c.slot):
            if self._stopping:  # a stop came during the reload: replace no more
                return
            new = self._spawn("worker", old.slot)
            deadline = time.monotonic() + READY_TIMEOUT
            while not new.ready and new.pid in self.children:
                event = self._next_event(deadline)
                if event is None:
                    break
                self._dispatch(event)
                if self._stopping:
                    return
            if not new.ready:
                self.log.error("reload: the new worker %d did not start; keeping the old one", old.slot)
                continue
            self._terminate(old)
            self._wait_exit([old], STOP_TIMEOUT)
            self._log_line(new, f" (replaced PID {old.pid})")

    def handle_ttin(self) -> None:
        """One worker more."""
        worker_id = max((int(c.slot) for c in self._alive("worker")), default=0) + 1
        self.worker_count += 1
        child = self._spawn("worker", worker_id)
        child.announce = " (added)"
        self.log.info("SIGTTIN: worker %d added (PID %d); %d worker(s)", worker_id, child.pid, self.worker_count)

    def handle_ttou(self) -> None:
        """One worker less (never below one)."""
        workers = self._alive("worker")
        if len(workers) <= 1:
            self.log.info("SIGTTOU: keeping the last worker")
            return
        last = max(workers, key=lambda c: c.slot)
        self.worker_count -= 1
        self._terminate(last)
        self.log.info("SIGTTOU: worker %d stopping; %d worker(s)", last.slot, self.worker_count)


def describe_status(status: int) -> str:
    """A wait status in words ("killed by SIGKILL (perhaps out of memory?)", "exit code 3")."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"killed by {name}" + (" (perhaps out of memory?)" if sig == signal.SIGKILL else "")
    code = os.WEXITSTATUS(status)
    meaning = {WORKER_BOOT_ERROR: " (the worker function failed)",
               BROKER_BOOT_ERROR: " (the broker could not listen)"}.get(code, "")
    return f"exit code {code}{meaning}"


def run_master(options: Options, log: Log) -> int:
    """Run ``Mode.Scale``: a master, its brokers and workers. Returns the exit code."""
    if options.scale_options.scaler is Scaler.Redis:
        log.error("Scaler.Redis is not available yet; use Scaler.Default (brokers)")
        return 2
    if options.scale_options.default.horizontal_scale_options is not None:
        log.warning("horizontal_scale_options are not available yet; running on this machine only")
    warn_unless_patched(log)
    raise_open_files_limit(log)
    return Master(options, log).run()

