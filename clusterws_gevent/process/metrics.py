"""Operations: ``/healthz`` and Prometheus ``/metrics`` (``metrics_options``).

The hot paths only bump plain integers (``websocket/stats.py``, the hub's counters); once
a second each worker copies them into ``prometheus_client`` metrics in its multiprocess
mode (the way gunicorn apps export metrics: each process writes its own memory-mapped
files in a directory the master makes and shares), so whichever worker answers a scrape
returns the sum over all workers, dead ones' counters included. prometheus_client is
the optional ``metrics`` extra: a well-kept exposition beats writing our own.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent

from ..exceptions import HaltServer
from ..log import Log
from ..options import MetricsOptions
from .exits import FAILED
from .numbers import worker_numbers

__all__ = ["prepare_metrics_directory", "remove_metrics_directory", "install_operations", "forget_process",
           "export_drops", "SYNC_INTERVAL", "LAG_INTERVAL"]

#: Seconds between two copies of the counters into the exported metrics.
SYNC_INTERVAL = 1.0
#: Seconds between two measures of the event loop's lag.
LAG_INTERVAL = 0.5
_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_directory(options: MetricsOptions, log: Log) -> Optional[str]:
    """Before any worker starts (in the master, or the single process): a fresh directory
    for the workers' metric files, named in the environment so that every process finds it.

    Raises:
        HaltServer: metrics are enabled and prometheus_client is not installed.
    """
    if not options.enabled:
        return None
    # Not imported here: prometheus_client picks its multiprocess value class at import, from
    # the environment, so the directory must be named first.
    if importlib.util.find_spec("prometheus_client") is None:
        raise HaltServer("metrics_options.enabled needs prometheus_client: pip install "
                         "'clusterws-gevent[metrics]'", FAILED)
    directory = tempfile.mkdtemp(prefix="clusterws-metrics-")
    os.environ[_ENV] = directory
    log.debug("metrics of every worker in %s", directory)
    return directory


def remove_metrics_directory(directory: Optional[str]) -> None:
    """At the end of the master (or the single process)."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def forget_process(pid: int) -> None:
    """A worker exited: its live gauges no longer count (its counters still do)."""
    if os.environ.get(_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def export_drops(lost: Callable[[], Dict[str, int]]) -> None:
    """In a broker or hub process (metrics enabled): copy ``lost()`` (messages dropped, by
    reason) into ``clusterws_dropped_messages_total`` once a second, as workers do."""
    if not os.environ.get(_ENV):
        return
    counter, seen = _dropped_counter(), {}  # type: ignore[var-annotated]

    def run() -> None:
        while True:
            gevent.sleep(SYNC_INTERVAL)
            _add_drops(counter, seen, lost())

    gevent.spawn(run)


_DROPPED: List[Any] = []


def _dropped_counter() -> Any:
    """The one family every process counts its dropped messages in (by ``reason``)."""
    if not _DROPPED:
        from prometheus_client import Counter

        _DROPPED.append(Counter("clusterws_dropped_messages", "Messages dropped, by reason", ["reason"]))
    return _DROPPED[0]


def _add_drops(counter: Any, seen: Dict[str, int], drops: Dict[str, int]) -> None:
    for reason, total in drops.items():
        delta = total - seen.get(reason, 0)
        if delta > 0:
            counter.labels(reason=reason).inc(delta)
            seen[reason] = total


def install_operations(worker: Any, options: MetricsOptions) -> None:
    """Serve ``/healthz`` (and ``/metrics`` when enabled) on ``worker``'s server."""
    server = worker.server
    if options.health_path:
        server.operations[options.health_path] = lambda: _health(worker)
    if options.enabled and os.environ.get(_ENV):
        exporter = _Exporter(worker)
        server.operations[options.path] = exporter.render
        gevent.spawn(exporter.run)


def _health(worker: Any) -> Tuple[int, str, bytes]:
    up, links = worker.wss.hub.connector.links_up()
    healthy = worker.server.started and up == links
    body = {"status": "ok" if healthy else "unavailable", "pid": os.getpid(), "worker": worker.id,
            "connections": len(worker.wss), "links_up": up, "links": links}
    return (200 if healthy else 503), "application/json", json.dumps(body).encode()


class _Exporter:
    """Copies one worker's counters into prometheus_client's multiprocess metrics."""

    def __init__(self, worker: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.worker = worker
        self._seen: Dict[Any, float] = {}
        self._dropped, self._dropped_seen = _dropped_counter(), {}  # type: ignore[var-annotated]
        self.counters = {
            "messages_in": Counter("clusterws_messages_received", "Messages received from clients"),
            "messages_out": Counter("clusterws_messages_sent", "Messages sent to one client (send, replies)"),
            "deliveries": Counter("clusterws_deliveries", "Publish frames written to subscribers"),
            "batches": Counter("clusterws_publish_batches", "Flushes of the publish batches"),
            "slow": Counter("clusterws_slow_consumer_closes", "Sockets closed for not reading"),
            "refused": Counter("clusterws_refused", "Refused upgrades and requests, by rule", ["reason"]),
        }
        self.connections = Gauge("clusterws_connections", "Open WebSockets", multiprocess_mode="livesum")
        self.channels = Gauge("clusterws_channels", "Channels with local subscribers, summed over workers",
                              multiprocess_mode="livesum")
        self.subscriptions = Gauge("clusterws_subscriptions", "Subscriptions of the open sockets",
                                   multiprocess_mode="livesum")
        self.links_up = Gauge("clusterws_pubsub_links_up", "Pub/sub links (brokers, Redis) up", ["worker"],
                              multiprocess_mode="livemax")
        self.links = Gauge("clusterws_pubsub_links", "Pub/sub links (brokers, Redis)", ["worker"],
                           multiprocess_mode="livemax")
        self.lag = Gauge("clusterws_event_loop_lag_seconds", "How late the event loop ran a 0.5 s timer",
                         multiprocess_mode="livemax")

    def run(self) -> None:
        """Sync the counters once a second; measure the event loop's lag in between."""
        while True:
            started = time.monotonic()
            gevent.sleep(LAG_INTERVAL)
            self.lag.set(max(0.0, time.monotonic() - started - LAG_INTERVAL))
            self.sync()
            gevent.sleep(SYNC_INTERVAL - LAG_INTERVAL)

    def sync(self) -> None:
        numbers = worker_numbers(self.worker)
        for name in ("messages_in", "messages_out", "deliveries", "batches"):
            self._add(name, numbers[name])
        self._add("slow", numbers["slow_consumer_closes"])
        _add_drops(self._dropped, self._dropped_seen, numbers["drops"])
        for reason, count in numbers["refused"].items():
            self._add("refused", count, reason=reason)
        self.connections.set(numbers["connections"])
        self.channels.set(numbers["channels"])
        self.subscriptions.set(numbers["subscriptions"])
        self.links_up.labels(worker=str(self.worker.id)).set(numbers["links_up"])
        self.links.labels(worker=str(self.worker.id)).set(numbers["links"])

    def _add(self, name: str, total: float, **labels: str) -> None:
        """Counters only go up: add what was counted since the last sync."""
        key = (name, tuple(sorted(labels.items())))
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            metric = self.counters[name]
            (metric.labels(**labels) if labels else metric).inc(delta)
            self._seen[key] = total

    def render(self) -> Tuple[int, str, bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        self.sync()  # this worker's latest, whatever the timer
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
