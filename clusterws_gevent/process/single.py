"""``Mode.Single``: one process serving everything."""
from __future__ import annotations

import os
import signal
from typing import List, Optional

import gevent
from gevent.event import Event
from gevent.monkey import is_module_patched

from ..exceptions import HaltServer
from ..log import Log
from ..options import Options
from .dashboard import Aggregator, child_row, prepare_dashboard_directory, remove_dashboard_directory
from .exits import FAILED, OK
from .metrics import prepare_metrics_directory, remove_metrics_directory
from .numbers import STARTED
from .reloader import restart_command, watch_sources
from .worker import Worker, raise_open_files_limit, server_info

__all__ = ["run_single", "warn_unless_patched", "bind_hint"]


def bind_hint(port: Optional[int]) -> str:
    """What to change when the port cannot be bound."""
    hint = " (choose another with --port, -b HOST:PORT or the port option"
    if port is not None and port < 1024:
        hint += f"; port {port} needs root or CAP_NET_BIND_SERVICE"
    return hint + ")"


def warn_unless_patched(log: Log) -> None:
    """Blocking I/O in a listener stalls every socket unless gevent patched the stdlib."""
    if not is_module_patched("socket"):
        log.warning("gevent has not monkey-patched the standard library: a listener doing blocking I/O "
                    "will stall every socket. Run with 'python -m clusterws_gevent', or call "
                    "gevent.monkey.patch_all() before importing anything else.")


def run_single(options: Options, log: Log) -> int:
    """Serve in this process until SIGINT or SIGTERM; returns the exit code."""
    warn_unless_patched(log)
    raise_open_files_limit(log)
    stop = Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    metrics_directory = dashboard_directory = None
    try:
        metrics_directory = prepare_metrics_directory(options.metrics_options, log)
        dashboard_directory = prepare_dashboard_directory(options.admin_options, log)
        worker = Worker(options, log)
        worker.start()
    except HaltServer as exc:
        log.error("cannot start: %s", exc.reason)
        remove_metrics_directory(metrics_directory)
        remove_dashboard_directory(dashboard_directory)
        return exc.exit_code
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s%s", options.host or "*", options.port, exc.strerror or exc,
                  bind_hint(options.port))
        remove_metrics_directory(metrics_directory)
        remove_dashboard_directory(dashboard_directory)
        return FAILED
    if dashboard_directory is not None:
        table = [child_row("single", 1, os.getpid(), STARTED[0], 0, "serving")]
        gevent.spawn(Aggregator(dashboard_directory, lambda: table, server_info(options)).run)
    log.info(">>> Worker: %d, PID: %d, on %s (Mode.Single)", worker.id, worker.pid, worker.url)
    restart: List[str] = []
    if options.scale_options.reload:
        def changed(path: str) -> None:
            log.info("%s changed; restarting (the same command line)", path)
            restart.extend(restart_command())
            stop.set()

        watch_sources(log, on_change=changed)
    try:
        stop.wait()
        log.info("stopping: closing %d socket(s) with 1001", len(worker.wss))
        worker.stop(options.scale_options.graceful_timeout)
    finally:
        for handler in handlers:
            handler.cancel()
        remove_metrics_directory(metrics_directory)
        remove_dashboard_directory(dashboard_directory)
    if restart:
        os.execv(restart[0], restart)  # its listening socket closed with the rest: the new process binds again
    log.info("stopped")
    return OK
