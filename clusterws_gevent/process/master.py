"""``Mode.Scale``: the master process, on gunicorn's arbiter shape.

The master binds the port, forks the brokers, then the workers (which share the
listening socket). It runs one loop in one greenlet:

1. **signals** only queue an event (:class:`SignalReceived`); child exits and
   "ready" bytes on a child's pipe are queued the same way;
2. the loop takes the next **event** and dispatches it to ``handle_<name>``;
3. **handlers** only change the desired state: how many workers, which code
   generation they should run, whether we are stopping, when a dead child may be
   restarted;
4. after every event (and every :data:`TICK` without one) :meth:`Master.reconcile`
   brings the processes in line with that state: kill what is past its deadline
   or gave no sign of life, spawn what is missing (after its restart delay),
   retire workers of an older generation one at a time (each only once its
   replacement is ready), stop everything in order when stopping;
5. **process helpers** fork, signal and watch children.

So no event is lost whatever phase the master is in: a broker killed during a
reload is restarted by the same reconcile step that advances the reload.

Signals: SIGTERM/SIGINT stop (workers close every WebSocket with 1001 within
``graceful_timeout``, then the brokers stop); SIGHUP replaces every worker, one
at a time, with one running the code on disk now (a SIGHUP during a reload makes
every worker older than it, those already replaced included, due for
replacement: no worker keeps code older than the last SIGHUP); SIGTTIN/SIGTTOU:
one worker more/less. Children exit by themselves when the master dies (the
lifeline pipe).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import ssl
import tempfile
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import gevent
from gevent.monkey import is_module_patched
from gevent.queue import Empty, Queue

from ..enums import Scaler
from ..exceptions import HaltServer
from ..log import Log
from ..net.loop_guard import on_loop
from ..net.sockets import Address, listen_tcp
from ..options import Options
from ..scale.hub_link import HubRouter, hub_key
from ..scale.redis_client import describe_redis
from . import numbers
from .balance import LoadTable
from .child import ChildContext, run_broker_process, run_hub_process, run_worker_process
from .dashboard import Aggregator, child_row, forget_snapshot, prepare_dashboard_directory, remove_dashboard_directory
from .events import ChildExited, Event, SignalReceived
from .exits import APP_LOAD_ERROR, BROKER_BOOT_ERROR, FAILED, OK, WORKER_BOOT_ERROR, describe_status
from .metrics import forget_process, prepare_metrics_directory, remove_metrics_directory
from .processes import BROKER, HUB, WORKER, Child, Kind, Processes, Slot
from .single import bind_hint, warn_unless_patched
from .worker import raise_open_files_limit, server_info

__all__ = ["Master", "run_master", "READY_TIMEOUT", "TICK", "RESTART_DELAY_MIN", "RESTART_DELAY_MAX"]

#: Seconds a new process has to report ready.
READY_TIMEOUT = 30.0
#: Seconds between two reconcile steps when no event comes (heartbeats, deadlines, restarts).
TICK = 0.1
#: Delay before restarting a process that died; doubled while it keeps dying...
RESTART_DELAY_MIN = 0.1
#: ... up to this.
RESTART_DELAY_MAX = 10.0
#: A process that lived this long before dying counts as healthy: its delay starts over.
HEALTHY_AFTER = 10.0
#: Seconds past its own bound before a stopping child is killed (its last log lines, its exit).
KILL_MARGIN = 2.0
#: Seconds a stopping broker has (its workers are gone by then).
BROKER_STOP_TIMEOUT = 5.0

_SIGNALS = {signal.SIGTERM: "TERM", signal.SIGINT: "INT", signal.SIGHUP: "HUP", signal.SIGTTIN: "TTIN",
            signal.SIGTTOU: "TTOU"}

class Master:
    """The master of ``Mode.Scale``.

    Args:
        options: validated options (``mode`` is ``Mode.Scale``).
        log: where to log.
        processes: what it does to processes and the clock (a test's fake).
        services_only: run the brokers (and the hub) alone, for workers another process
            manager runs (gunicorn's, ``clusterws_gevent/gunicorn.py``): no listening socket,
            no worker, SIGTERM only (a Ctrl-C reaches the whole process group: the brokers
            stay until the other manager's workers are gone and it sends SIGTERM).
        key: the cluster key (default: a new one, which only our children know).
        parent_pid: stop when this process (gunicorn's arbiter) is no longer our parent.
    """

    def __init__(self, options: Options, log: Log, processes: Optional[Processes] = None,
                 services_only: bool = False, key: Optional[bytes] = None, parent_pid: Optional[int] = None) -> None:
        self.options = options
        self.log = log
        self.processes = processes or Processes()
        scale = options.scale_options
        self.restart_on_fail = scale.restart_on_fail
        self.worker_timeout = scale.worker_timeout
        self.graceful_timeout = scale.graceful_timeout
        self.key = key or secrets.token_bytes(32)  # the cluster key: only our children know it
        self.services_only = services_only
        self.parent_pid = parent_pid
        #: Called once every process is ready (the start-up is over).
        self.on_serving: Optional[Callable[[], None]] = None
        self.events: Queue[Event] = Queue()
        self.children: Dict[int, Child] = {}
        self.listener: Any = None
        self.load_table = LoadTable() if scale.balance == "least-connections" else None
        self.broker_addresses: List[Address] = list(scale.default.brokers_ports or ())
        self.horizontal = scale.default.horizontal_scale_options
        master_options = self.horizontal.master_options if self.horizontal is not None else None
        #: The port of the scaler hub this master runs (master_options), or None.
        self.hub_port = master_options.port if master_options is not None else None
        self.server_id = os.urandom(8)  # this server, for the hubs (never an option, as the seed)
        # -- the desired state (changed by the handlers only)
        self.worker_count = 0 if services_only else scale.workers
        self.generation = 0  # SIGHUPs so far: workers of an older generation are due for replacement
        self.stopping = False
        self.exit_code = OK
        self._not_before: Dict[Tuple[Kind, Slot], float] = {}  # restart delays: no spawn before then
        self._given_up: Set[Tuple[Kind, Slot]] = set()  # died, not restarted (restart_on_fail off)
        # -- bookkeeping
        self._delays: Dict[Tuple[Kind, Slot], float] = {}
        self._forks: Dict[Tuple[Kind, Slot], int] = {}  # processes forked for each slot so far
        self._serving = False  # every process was ready once: the start-up is over
        self._started_at = self.processes.clock()
        self._lifeline_r, self._lifeline_w = os.pipe()
        self._runtime_dir: Optional[str] = None
        self._metrics_directory: Optional[str] = None
        self._dashboard_directory: Optional[str] = None
        self._aggregator: Any = None
        self._signal_handlers: List[Any] = []
        # The master's own greenlets: a forked child inherits them and must kill them
        # (one reading a sibling's ready pipe would swallow that sibling's ready byte).
        self._tasks: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, then handle events until stopped; returns the exit code."""
        self._install_signals()
        try:
            self.listener = None if self.services_only else self._bind()
            self._metrics_directory = prepare_metrics_directory(self.options.metrics_options, self.log)
            self._dashboard_directory = prepare_dashboard_directory(self.options.admin_options, self.log)
            if self._dashboard_directory is not None:
                aggregator = Aggregator(self._dashboard_directory, self.process_table, server_info(self.options))
                self._aggregator = gevent.spawn(aggregator.run)
                self._tasks.add(self._aggregator)
            if not self.broker_addresses and self.options.scale_options.scaler is Scaler.Default:
                self.broker_addresses = self._private_broker_addresses()
            if self.hub_port is not None:
                self._private_directory()  # made here, before any fork: every child names the same one
            self._loop()
        except HaltServer as exc:
            self.log.error("stopping: %s", exc.reason)
            self.exit_code = exc.exit_code
            self.stopping = True
            self._loop()
        finally:
            for handler in self._signal_handlers:
                handler.cancel()
            if self.listener is not None:
                self.listener.close()
            if self._runtime_dir is not None:
                shutil.rmtree(self._runtime_dir, ignore_errors=True)
            remove_metrics_directory(self._metrics_directory)
            if self._aggregator is not None:
                self._aggregator.kill(block=False)
            remove_dashboard_directory(self._dashboard_directory)
        return self.exit_code

    def _loop(self) -> None:
        """Handle events and reconcile until everything has stopped."""
        while True:
            event = self._next_event(TICK)
            if event is not None:
                self.dispatch(event)
            if self.reconcile():
                return

    # -- signals ----------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        """Each handler only queues the signal (gevent runs it in a greenlet, never inside the signal)."""
        signals = {signal.SIGTERM: "TERM"} if self.services_only else _SIGNALS
        if self.services_only:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._signal_handlers = [gevent.signal_handler(sig, self.events.put, SignalReceived(name))
                                 for sig, name in signals.items()]

    # -- events -----------------------------------------------------------------------------------

    def _next_event(self, timeout: float) -> Optional[Event]:
        """The next queued event, or None after ``timeout`` seconds.

        Waiting with a timeout also keeps a timer in gevent's loop: child and signal
        watchers do not keep the hub alive, and a bare get() would end in LoopExit."""
        try:
            event: Event = self.events.get(timeout=timeout)
        except Empty:
            return None
        return event

    def put_event(self, event: Event) -> None:
        """Queue ``event`` for the loop (from a signal handler, a watcher, a greenlet)."""
        self.events.put(event)

    def dispatch(self, event: Event) -> None:
        """Hand ``event`` to its handler (``handle_<name>``)."""
        if isinstance(event, SignalReceived):
            getattr(self, "handle_" + event.name.lower())()
        elif isinstance(event, ChildExited):
            self.handle_exit(event.pid, event.status)
        else:
            self.handle_ready(event.pid)

    # -- handlers: they change the desired state; reconcile() acts on it ---------------------------

    def handle_term(self) -> None:
        """Stop everything (graceful)."""
        self.log.info("SIGTERM: stopping")
        self.stopping = True

    def handle_int(self) -> None:
        """Ctrl-C: stop everything (graceful)."""
        self.log.info("SIGINT: stopping")
        self.stopping = True

    def handle_hup(self) -> None:
        """Replace every worker, one at a time, by one running the code on disk now."""
        self.generation += 1
        due = len([c for c in self._alive(WORKER) if c.generation < self.generation])
        self.log.info("SIGHUP: replacing %d worker(s) one at a time (generation %d)", due, self.generation)

    def handle_ttin(self) -> None:
        """One worker more."""
        self.worker_count += 1
        self.log.info("SIGTTIN: worker %d added; %d worker(s)", self.worker_count, self.worker_count)

    def handle_ttou(self) -> None:
        """One worker less (never below one)."""
        if self.worker_count <= 1:
            self.log.info("SIGTTOU: keeping the last worker")
            return
        self.log.info("SIGTTOU: worker %d stopping; %d worker(s)", self.worker_count, self.worker_count - 1)
        self.worker_count -= 1

    def handle_ready(self, pid: int) -> None:
        """A child serves: log it (after the start-up), and let the worker it replaces go."""
        child = self.children.get(pid)
        if child is None or child.stopping:
            return
        child.ready = True
        if not self._serving:
            return  # the start-up logs every process at once
        note = child.note
        old, child.replaces = child.replaces, None
        if old is not None:
            self._terminate(old)
            note = f" (replaced PID {old.pid})"
        self._log_line(child, note)

    def handle_exit(self, pid: int, status: int) -> None:
        """A child exited: forget it; decide whether and when its slot gets a new one."""
        child = self.children.pop(pid, None)
        if child is None:
            return
        self.processes.release(child)
        forget_snapshot(pid)
        if child.kind is WORKER:
            forget_process(pid)
            if self.load_table is not None:
                self.load_table.clear(int(child.slot))
        if child.stopping or self.stopping:
            self.log.info("%s (PID %d) exited", child.name, pid)
            return
        level = self.log.error if os.WIFSIGNALED(status) else self.log.warning
        level("%s (PID %d) died: %s", child.name, pid,
              "killed for giving no sign of life" if child.hung else describe_status(status))
        if not self._serving:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else FAILED
            if code not in (WORKER_BOOT_ERROR, BROKER_BOOT_ERROR, APP_LOAD_ERROR):
                code = BROKER_BOOT_ERROR if child.kind is BROKER else WORKER_BOOT_ERROR
            raise HaltServer(f"{child.name} could not start ({describe_status(status)})", code)
        if child.replaces is not None:
            self.log.error("reload: the new %s did not start; keeping the old one for now", child.name)
        elif not self.restart_on_fail:
            self.log.error("%s is not restarted (restart_on_fail is off)", child.name)
            self._given_up.add((child.kind, child.slot))
            return
        self._schedule_restart(child)

    def _schedule_restart(self, child: Child) -> None:
        key = (child.kind, child.slot)
        now = self.processes.clock()
        lived = now - child.started
        delay = RESTART_DELAY_MIN if lived >= HEALTHY_AFTER else min(
            self._delays.get(key, RESTART_DELAY_MIN / 2) * 2, RESTART_DELAY_MAX)
        self._delays[key] = delay
        self._not_before[key] = now + delay
        if child.replaces is None:
            self.log.warning("restarting %s in %.1fs", child.name, delay)

    # -- reconcile: bring the processes in line with the desired state ------------------------------

    def reconcile(self) -> bool:
        """One step towards the desired state; True once stopped (no child left)."""
        now = self.processes.clock()
        self._kill_overdue(now)
        self._check_heartbeats()
        if self.parent_pid is not None and not self.stopping and os.getppid() != self.parent_pid:
            self.log.warning("the process that started us (PID %d) is gone; stopping", self.parent_pid)
            self.stopping = True
        if self.stopping:
            return self._reconcile_stop()
        self._reconcile_services(now)
        if self._serving or self._services_ready():
            self._reconcile_workers(now)
            self._advance_reload(now)
        if not self._serving:
            self._check_start_up(now)
        elif self.worker_count and not any(self._alive(WORKER)) and all(
                (WORKER, slot) in self._given_up for slot in range(1, self.worker_count + 1)):
            raise HaltServer("no worker left", FAILED)
        return False

    def _services(self) -> List[Tuple[Kind, Slot]]:
        """The processes that serve the workers: the hub (master_options), then the brokers."""
        hub: List[Tuple[Kind, Slot]] = [(HUB, self.hub_port)] if self.hub_port is not None else []
        return hub + [(BROKER, address) for address in self.broker_addresses]

    def _services_ready(self) -> bool:
        ready = {(c.kind, c.slot) for c in self.children.values() if c.ready and not c.stopping}
        return all(service in ready for service in self._services())

    def _reconcile_services(self, now: float) -> None:
        present = {(c.kind, c.slot) for c in self.children.values() if not c.stopping}
        for kind, slot in self._services():
            if (kind, slot) not in present and self._may_spawn(kind, slot, now):
                self._spawn(kind, slot)

    def _reconcile_workers(self, now: float) -> None:
        present = {c.slot for c in self._alive(WORKER)}
        for slot in range(1, self.worker_count + 1):
            if slot not in present and self._may_spawn(WORKER, slot, now):
                self._spawn(WORKER, slot)
        for child in self._alive(WORKER):
            if int(child.slot) > self.worker_count:  # SIGTTOU
                self._terminate(child)

    def _advance_reload(self, now: float) -> None:
        """Retire the workers of an older generation one at a time: fork a replacement for
        the first one; it stops (in handle_ready) once its replacement serves."""
        workers = self._alive(WORKER)
        if any(c.replaces is not None for c in workers):
            return  # a replacement is starting: one step at a time
        for old in sorted(workers, key=lambda c: int(c.slot)):
            if old.generation < self.generation and old.ready and self._may_spawn(WORKER, old.slot, now):
                self._spawn(WORKER, old.slot).replaces = old
                return

    def _reconcile_stop(self) -> bool:
        """Workers first (they close their WebSockets with 1001), then brokers."""
        workers = [c for c in self.children.values() if c.kind is WORKER]
        for child in workers:
            if not child.stopping:
                self._terminate(child)
        if workers:
            return False
        for child in list(self.children.values()):
            if not child.stopping:
                self._terminate(child)
        return not self.children

    def _kill_overdue(self, now: float) -> None:
        """SIGKILL what did not stop in time, or did not start in time."""
        for child in list(self.children.values()):
            overdue = child.kill_at is not None and now > child.kill_at
            stuck = not child.ready and not child.stopping and now - child.started > READY_TIMEOUT
            if (overdue or stuck) and not child.killed:
                self.log.error("%s (PID %d) did not %s in time; killing it", child.name, child.pid,
                               "stop" if overdue else "start")
                self._kill(child)

    def _check_heartbeats(self) -> None:
        """Kill a worker whose event loop stopped beating (gunicorn's murder_workers), even
        while it stops or is being replaced."""
        if not self.worker_timeout:
            return
        for child in list(self.children.values()):
            if child.heartbeat is None or not child.ready or child.killed:
                continue
            silent = self.processes.heartbeat_age(child.heartbeat)
            if silent > self.worker_timeout:
                self.log.error("%s (PID %d) gave no sign of life for %.0fs (a listener blocking its event loop?); "
                               "killing it", child.name, child.pid, silent)
                child.hung = True
                self._kill(child)

    def _check_start_up(self, now: float) -> None:
        if self._services_ready() and self._complete(WORKER) and all(c.ready for c in self.children.values()):
            self._serving = True
            self._log_ready()
            if self.on_serving is not None:
                self.on_serving()
        elif now - self._started_at > READY_TIMEOUT + 1:
            raise HaltServer(f"not every process was ready within {READY_TIMEOUT:.0f}s", FAILED)

    def _complete(self, kind: Kind) -> bool:
        present = {c.slot for c in self._alive(kind)}
        return all(slot in present for slot in range(1, self.worker_count + 1))

    def _may_spawn(self, kind: Kind, slot: Slot, now: float) -> bool:
        key = (kind, slot)
        return key not in self._given_up and now >= self._not_before.get(key, 0.0)

    # -- process helpers ------------------------------------------------------------------------

    def _alive(self, kind: Kind) -> List[Child]:
        return [c for c in self.children.values() if c.kind is kind and not c.stopping]

    def _spawn(self, kind: Kind, slot: Slot) -> Child:
        pid, ready_fd, heartbeat = self.processes.spawn(self, kind, slot)
        child = self.children[pid] = Child(kind, slot, pid, self.generation, heartbeat, ready_fd,
                                           self.processes.clock())
        forks = self._forks[(kind, slot)] = self._forks.get((kind, slot), 0) + 1
        child.note = " (restarted)" if forks > 1 else " (added)"
        task = self.processes.watch_ready(self, child)
        if task is not None:
            self._tasks.add(task)
        self.log.debug("started %s, PID %d", child.name, pid)
        return child

    def process_table(self) -> List[Dict[str, Any]]:
        """The dashboard's table of processes: this master, then its children."""
        now, wall = self.processes.clock(), time.time()
        rows = [{**child_row("master", "", os.getpid(), wall - (now - self._started_at), 0,
                             "stopping" if self.stopping else "serving" if self._serving else "starting"),
                 "rss": numbers.rss_bytes()}]
        for child in sorted(self.children.values(), key=lambda c: (c.kind.value, str(c.slot).zfill(12))):
            state = "stopping" if child.stopping else "ready" if child.ready else "starting"
            rows.append(child_row(child.kind.value, child.slot, child.pid, wall - (now - child.started),
                                  self._forks[(child.kind, child.slot)] - 1, state))
        return rows

    def child_main(self, kind: Kind, slot: Slot, ready_w: int, heartbeat: Any) -> int:
        """What a forked child runs (``Processes.spawn``); returns its exit code."""
        code = FAILED
        numbers.STARTED[0] = time.time()
        try:
            for task in list(self._tasks):
                task.kill(block=False)
            for handler in self._signal_handlers:
                handler.cancel()
            for sibling in self.children.values():  # a child holds only its own fds
                self.processes.release(sibling)
            os.close(self._lifeline_w)  # only the master holds it: its death is our EOF
            context = ChildContext(ready_w, self._lifeline_r, self.key, self.log,
                                   heartbeat.fileno() if heartbeat is not None else -1)
            if kind is not WORKER and self.listener is not None:
                self.listener.close()
            if kind is HUB:
                code = self._run_hub(context, int(slot))
            elif kind is BROKER:
                code = run_broker_process(context, slot, self.graceful_timeout + KILL_MARGIN, self._hub_router(slot),
                                          self.options.channel_options)
            else:
                code = run_worker_process(context, self.options, int(slot), self.listener, self.broker_addresses,
                                          self.load_table)
        except BaseException:  # noqa: B036 - a child must never return into the master's code
            self.log.exception("%s %s failed", kind.value, slot)
        return code

    def _run_hub(self, context: ChildContext, port: int) -> int:
        assert self.horizontal is not None and self.horizontal.master_options is not None
        return run_hub_process(context, self.options.host or "", port, hub_key(self.horizontal.key or ""),
                               self.horizontal.master_options.tls_options, self._hub_local_path())

    def _hub_router(self, address: Slot) -> Optional[HubRouter]:
        """The links of broker ``address`` to the hubs (its own server's first), or None."""
        horizontal = self.horizontal
        if horizontal is None:
            return None
        urls = list(horizontal.scalers_urls)
        if self.hub_port is not None:  # this server's own hub: on a private Unix socket, no certificate
            urls.insert(0, "unix:" + self._hub_local_path())
        context = ssl.create_default_context(cafile=horizontal.ca_certs) if any(
            url.startswith("wss://") for url in urls) else None
        index = self.broker_addresses.index(address) + 1
        return HubRouter(urls, hub_key(horizontal.key or ""), index, self.server_id, lambda kind, frame: None,
                         self.log, context)

    @on_loop
    def loop_child_exited(self, watcher: Any) -> None:
        """Event-loop callback of a child watcher: queue the exit (an unbounded queue's put never waits)."""
        self.events.put(ChildExited(watcher.pid, watcher.rstatus))

    def _terminate(self, child: Child) -> None:
        """Ask ``child`` to stop (SIGTERM), and kill it if it is still alive past its bound."""
        if child.stopping:
            return
        child.stopping = True
        bound = self.graceful_timeout if child.kind is WORKER else BROKER_STOP_TIMEOUT
        child.kill_at = self.processes.clock() + bound + KILL_MARGIN
        self._signal(child, signal.SIGTERM)

    def _kill(self, child: Child) -> None:
        child.killed = True
        self._signal(child, signal.SIGKILL)

    def _signal(self, child: Child, sig: int) -> None:
        """Signal a child we have not reaped (its PID cannot belong to another process yet)."""
        if child.pid in self.children:
            self.log.debug("sent %s to %s (PID %d)", signal.Signals(sig).name, child.name, child.pid)
            self.processes.signal(child.pid, sig)

    def _bind(self) -> Any:
        """The listening socket every worker shares (none with balance="reuseport").

        Connections are spread by process/balance.py over this one shared queue; SO_REUSEPORT
        (a socket per worker) strands the connections queued on a stopping worker unless the
        kernel migrates them (net.ipv4.tcp_migrate_req, off by default): with one queue any
        worker takes any connection, and a rolling reload refuses none."""
        if self.options.scale_options.balance == "reuseport":
            return None
        host = self.options.host or ""
        try:
            return listen_tcp(host, int(self.options.port or 0))
        except OSError as exc:
            raise HaltServer(f"cannot listen on {host or '*'}:{self.options.port}: {exc.strerror or exc}"
                             f"{bind_hint(self.options.port)}", FAILED) from None

    def _private_broker_addresses(self) -> List[Address]:
        """Unix sockets in a directory only this user can enter (mkdtemp makes it 0700):
        no other app's brokers collide with ours, and no other user's process can take
        or reach a broker's address. Removed when the master exits."""
        brokers = self.options.scale_options.default.brokers
        return [os.path.join(self._private_directory(), f"broker-{index}.sock") for index in range(1, brokers + 1)]

    def _hub_local_path(self) -> str:
        """Where this server's hub takes its own brokers (in the private directory)."""
        return os.path.join(self._private_directory(), "hub.sock")

    def _private_directory(self) -> str:
        if self._runtime_dir is None:
            self._runtime_dir = tempfile.mkdtemp(prefix="clusterws-")
        return self._runtime_dir

    def _log_ready(self) -> None:
        """One line per process, as the seed prints them."""
        joined = (f"Redis {describe_redis(self.options.scale_options.redis or '')}"
                  if self.options.scale_options.scaler is Scaler.Redis else f"{len(self.broker_addresses)} broker(s)")
        if self.services_only:
            self.log.info(">>> Brokers' master, PID: %d (%s, for gunicorn's workers)", os.getpid(), joined)
        else:
            self.log.info(">>> Master on: %d, PID: %d (Mode.Scale, %d worker(s), %s)", self.options.port, os.getpid(),
                          self.worker_count, joined)
        for kind in (HUB, BROKER, WORKER):
            for child in sorted(self._alive(kind), key=lambda c: str(c.slot).zfill(12)):
                self._log_line(child)

    def _log_line(self, child: Child, note: str = "") -> None:
        what = {BROKER: "Broker on", HUB: "Hub on"}.get(child.kind, "Worker")
        self.log.info(">>> %s: %s, PID: %d%s", what, child.slot, child.pid, note)


def run_master(options: Options, log: Log) -> int:
    """Run ``Mode.Scale``: a master, its brokers and workers. Returns the exit code."""
    if options.scale_options.scaler is Scaler.Redis and not all(map(is_module_patched, ("socket", "select"))):
        log.error("Scaler.Redis needs gevent's monkey-patching (redis-py uses the standard library's sockets): "
                  "run with 'python -m clusterws_gevent', or call gevent.monkey.patch_all() before importing "
                  "anything else")
        return FAILED
    warn_unless_patched(log)
    raise_open_files_limit(log)
    return Master(options, log).run()
