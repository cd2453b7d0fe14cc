"""What a child process of the master runs, right after ``fork``: a worker or a broker.

Both report readiness on a pipe the master reads, stop gracefully on SIGTERM or
SIGINT, and exit by themselves when the master dies (EOF on the lifeline pipe,
whose write end only the master holds).
"""
from __future__ import annotations

import os
import signal
from typing import Any, Callable, List, Tuple

import gevent
from gevent.event import Event
from gevent.socket import wait_read

from ..exceptions import HaltServer
from ..log import Log
from ..net.sockets import Address, describe
from ..options import Options
from ..scale.broker import Broker
from ..scale.broker_client import BrokerConnector
from ..websocket.wsgi import reset_socket_ids
from .single import GRACEFUL_TIMEOUT
from .worker import WORKER_BOOT_ERROR, Worker

__all__ = ["ChildContext", "run_worker_process", "run_broker_process", "BROKER_BOOT_ERROR", "WORKER_BOOT_ERROR",
           "LINK_TIMEOUT"]

#: Exit code of a broker that could not listen on its port.
BROKER_BOOT_ERROR = 4
#: Seconds a new worker waits for its broker links before it counts as ready anyway.
LINK_TIMEOUT = 5.0


class ChildContext:
    """What the master hands a child: the pipes and the cluster's secrets.

    Args:
        ready_fd: write one byte here once serving.
        lifeline_fd: EOF here means the master is gone.
        key: the cluster key.
        log: where to log.
    """

    def __init__(self, ready_fd: int, lifeline_fd: int, key: bytes, log: Log, heartbeat_fd: int = -1) -> None:
        self.ready_fd = ready_fd
        self.lifeline_fd = lifeline_fd
        self.key = key
        self.log = log
        self.heartbeat_fd = heartbeat_fd

    def beat(self, every: float) -> None:
        """Touch the heartbeat file every ``every`` seconds, from a greenlet: a blocked
        event loop stops the beats, and the master kills the worker (gunicorn's WorkerTmp)."""
        if self.heartbeat_fd < 0:
            return

        def loop() -> None:
            while True:
                os.utime(self.heartbeat_fd)
                gevent.sleep(every)

        gevent.spawn(loop)

    def ready(self) -> None:
        """Tell the master this process serves."""
        os.write(self.ready_fd, b"R")
        os.close(self.ready_fd)

    def wait_for_stop(self, what: str, signals: Tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> str:
        """Block until one of ``signals`` or the master's death; returns which."""
        stop = Event()
        reason: List[str] = []

        def stop_on(why: str) -> Callable[[], None]:
            def handler() -> None:
                reason.append(why)
                stop.set()
            return handler

        handlers = [gevent.signal_handler(sig, stop_on(signal.Signals(sig).name)) for sig in signals]
        watcher = gevent.spawn(self._watch_lifeline, stop_on("master died"))
        try:
            stop.wait()
        finally:
            for handler in handlers:
                handler.cancel()
            watcher.kill(block=False)
        if reason[0] == "master died":
            self.log.warning("%s %d: the master is gone; stopping", what, os.getpid())
        return reason[0]

    def _watch_lifeline(self, on_eof: Callable[[], None]) -> None:
        while True:
            wait_read(self.lifeline_fd)
            if not os.read(self.lifeline_fd, 64):
                on_eof()
                return


def run_worker_process(context: ChildContext, options: Options, worker_id: int, listener: Any,
                       broker_addresses: List[Address]) -> int:
    """A worker: its servers, joined to every broker. Returns the exit code."""
    reset_socket_ids()
    log = context.log
    connector = BrokerConnector(broker_addresses, context.key, worker_id, log)
    try:
        worker = Worker(options, log, connector, listener=listener, worker_id=worker_id)
        worker.server.max_accept = 1  # spread connections over the workers (gunicorn does the same)
        worker.start()
    except HaltServer as exc:
        log.error("worker %d: %s", worker_id, exc.reason)
        return WORKER_BOOT_ERROR
    timeout = options.scale_options.worker_timeout
    if timeout:
        context.beat(min(1.0, timeout / 4))
    if not connector.wait_connected(LINK_TIMEOUT):
        log.warning("worker %d: not every broker answered within %.0fs; serving anyway (links keep retrying)",
                    worker_id, LINK_TIMEOUT)
    context.ready()
    context.wait_for_stop(f"worker {worker_id}")
    worker.stop(GRACEFUL_TIMEOUT)
    connector.stop()  # leaving the brokers lets a stopping broker go
    return 0


def run_broker_process(context: ChildContext, address: Address) -> int:
    """A broker on ``address``. Returns the exit code."""
    broker = Broker(address, context.key, context.log)
    try:
        broker.start()
    except OSError as exc:
        context.log.error("broker cannot listen on %s: %s", describe(address), exc.strerror or exc)
        return BROKER_BOOT_ERROR
    context.ready()
    # Ctrl-C reaches the whole process group: a broker ignores SIGINT and stops when the
    # master says so (SIGTERM), after the workers have closed their WebSockets.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    context.wait_for_stop(f"broker {describe(address)}", (signal.SIGTERM,))
    broker.stop(wait_for_workers=GRACEFUL_TIMEOUT + 1)
    return 0
