"""What a child process of the master runs, right after ``fork``: a worker or a broker.

Both report readiness on a pipe the master reads, stop gracefully on SIGTERM or
SIGINT, and exit by themselves when the master dies (EOF on the lifeline pipe,
whose write end only the master holds).
"""
from __future__ import annotations

import os
import signal
from typing import Any, Callable, List, Optional, Tuple

import gevent
from gevent.event import Event
from gevent.socket import wait_read

from ..enums import Scaler
from ..exceptions import HaltServer
from ..log import Log
from ..net.sockets import Address, describe, listen_tcp
from ..options import ChannelOptions, Options
from ..pubsub.connector import Connector
from ..scale.broker import Broker
from ..scale.broker_client import BrokerConnector
from ..scale.hub import Hub
from ..scale.hub_link import HubRouter
from .balance import AcceptGate, LoadTable
from .dashboard import report, short_name
from .exits import BROKER_BOOT_ERROR, OK, WORKER_BOOT_ERROR
from .metrics import export_drops
from .numbers import process_numbers
from .reloader import watch_sources
from .worker import Worker

__all__ = ["ChildContext", "run_worker_process", "run_broker_process", "run_hub_process", "make_connector",
           "LINK_TIMEOUT"]

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
                       broker_addresses: List[Address], load_table: Optional[LoadTable] = None) -> int:
    """A worker: its servers, joined to every broker. Returns the exit code."""
    log = context.log
    scale = options.scale_options
    connector = make_connector(options, context.key, context.log, worker_id, broker_addresses)
    try:
        if listener is None:  # balance="reuseport": a listening socket of our own
            listener = listen_tcp(options.host or "", int(options.port or 0), reuseport=True)
        worker = Worker(options, log, connector, listener=listener, worker_id=worker_id)
        worker.server.max_accept = 1  # spread connections over the workers (gunicorn does the same)
        gate = None if load_table is None else balance_connections(worker, load_table)
        worker.start()
    except HaltServer as exc:
        log.error("worker %d: %s", worker_id, exc.reason)
        return exc.exit_code
    except OSError as exc:
        log.error("worker %d cannot listen on port %d: %s", worker_id, options.port, exc.strerror or exc)
        return WORKER_BOOT_ERROR
    if scale.worker_timeout:
        context.beat(min(1.0, scale.worker_timeout / 4))
    if scale.reload and worker_id == 1:
        watch_sources(log)
    if not connector.wait_connected(LINK_TIMEOUT):
        log.warning("worker %d: not every broker answered within %.0fs; serving anyway (links keep retrying)",
                    worker_id, LINK_TIMEOUT)
    context.ready()
    context.wait_for_stop(f"worker {worker_id}")
    if gate is not None:
        gate.close()
    worker.stop(scale.graceful_timeout)
    connector.stop()  # leaving the brokers lets a stopping broker go
    return OK


def make_connector(options: Options, key: bytes, log: Log, worker_id: int,
                   broker_addresses: List[Address]) -> Connector:
    """What joins this worker to the others: Redis (Scaler.Redis) or the brokers (at
    ``broker_addresses``, proving ``key``)."""
    scale = options.scale_options
    if scale.scaler is Scaler.Redis:
        from ..scale.redis import RedisConnector  # imports redis: only where it is used
        from ..scale.redis_client import default_prefix

        assert scale.redis is not None  # the options require it with Scaler.Redis
        return RedisConnector(scale.redis, scale.redis_prefix or default_prefix(scale.redis), worker_id, log,
                              options.channel_options)
    return BrokerConnector(broker_addresses, key, worker_id, log)


def balance_connections(worker: Worker, table: LoadTable) -> AcceptGate:
    """Let ``worker`` accept only while it is among the least loaded (``process/balance.py``)."""
    gate = AcceptGate(table, worker.id, worker.server)
    worker.server.on_connection_opened = gate.opened
    worker.server.on_connection_closed = gate.closed
    gate.start()
    return gate


def run_broker_process(context: ChildContext, address: Address, stop_timeout: float,
                       hubs: Optional[HubRouter] = None, channels: Optional[ChannelOptions] = None) -> int:
    """A broker on ``address`` (joined to the horizontal hubs, if ``hubs``). Returns the exit code.

    Args:
        stop_timeout: how long a stopping broker waits for its workers to leave.
    """
    broker = Broker(address, context.key, context.log, hubs, channels)
    if hubs is not None:
        hubs.deliver = broker.deliver_from_hub
    try:
        broker.start()
    except OSError as exc:
        context.log.error("broker cannot listen on %s: %s", describe(address), exc.strerror or exc)
        return BROKER_BOOT_ERROR
    export_drops(broker.lost)
    report("broker", lambda: {**process_numbers("broker", short_name(address)), "drops": broker.lost(),
                              "link_list": broker.describe_links()})
    context.ready()
    # Ctrl-C reaches the whole process group: a broker ignores SIGINT and stops when the
    # master says so (SIGTERM), after the workers have closed their WebSockets.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    context.wait_for_stop(f"broker {describe(address)}", (signal.SIGTERM,))
    broker.stop(wait_for_workers=stop_timeout)
    return OK


def run_hub_process(context: ChildContext, host: str, port: int, key: bytes, ssl_context: Any,
                    local_path: Optional[str] = None) -> int:
    """The horizontal scaler hub on ``host:port`` (and ``local_path``, a Unix socket for this
    server's own brokers). Returns the exit code."""
    hub = Hub(host, port, key, context.log, ssl_context, local_path)
    try:
        hub.start()
    except OSError as exc:
        context.log.error("hub cannot listen on port %d: %s", port, exc.strerror or exc)
        return BROKER_BOOT_ERROR
    export_drops(hub.lost)
    report("hub", lambda: {**process_numbers("hub", port), "drops": hub.lost()})
    context.ready()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a broker: stopped by the master, last
    context.wait_for_stop(f"hub {port}", (signal.SIGTERM,))
    hub.stop()
    return OK
