"""The dashboard's numbers (``admin_options``): every process reports, one aggregates.

The same shape as the metrics: the master (or the single process) makes a directory
before any fork and names it in the environment; once a second every process (workers,
brokers, the hub) writes what it counts (``numbers.py``, the numbers ``/metrics``
exports) to a file of its own there, and the master's :class:`Aggregator` reads them
all, adds its table of processes (pid, restarts, state), turns counters into rates,
keeps 15 minutes of history and writes one ``cluster.json``. Whichever worker answers
the dashboard serves that file (``admin.py``). Nothing here runs when the dashboard is
off; when on, a worker pays a file write a second and a count per channel per flush.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

import gevent

from ..log import Log
from ..net.sockets import describe
from ..options import AdminOptions
from .numbers import process_numbers, top_channels, worker_numbers

__all__ = ["prepare_dashboard_directory", "remove_dashboard_directory", "forget_snapshot", "report",
           "report_worker", "dashboard_directory", "aggregated_elsewhere", "Aggregator", "child_row",
           "short_name", "CLUSTER_FILE", "INTERVAL", "HISTORY_POINTS"]

#: Seconds between two reports (and two aggregations).
INTERVAL = 1.0
#: Points of history kept: 15 minutes at one a second.
HISTORY_POINTS = 900
#: A report older than this is from a process that stopped reporting (killed, stopped).
STALE_AFTER = 5.0
#: Channels each worker reports, by subscribers and by messages; the page shows the top 10 merged.
TOP_CHANNELS = 20
#: The aggregate every worker serves (a worker that aggregates for itself: ``cluster-PID.json``).
CLUSTER_FILE = "cluster.json"
_ENV = "CLUSTERWS_DASHBOARD_DIR"
_AGGREGATED = "CLUSTERWS_DASHBOARD_AGGREGATED"  # set where the master (or the single process) aggregates
_RATES = ("messages_in", "messages_out", "deliveries", "drops")


def prepare_dashboard_directory(options: AdminOptions, log: Log, aggregated: bool = True) -> Optional[str]:
    """Before any worker starts (in the master, the single process, gunicorn's arbiter): a
    fresh private directory for the reports, named in the environment so that every process
    finds it; ``aggregated``: this process runs the :class:`Aggregator` (else each worker does)."""
    if not options.enabled:
        return None
    directory = tempfile.mkdtemp(prefix="clusterws-admin-")  # 0700: only this user reads the numbers
    os.environ[_ENV] = directory
    if aggregated:
        os.environ[_AGGREGATED] = "1"
    log.debug("dashboard reports in %s", directory)
    return directory


def aggregated_elsewhere() -> bool:
    """Whether the master (or the single process) aggregates the reports: a worker then serves its file."""
    return bool(os.environ.get(_AGGREGATED))


def dashboard_directory() -> Optional[str]:
    """The reports' directory of this server, or None (the dashboard is off)."""
    return os.environ.get(_ENV) or None


def remove_dashboard_directory(directory: Optional[str]) -> None:
    """At the end of the master (or the single process)."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        if os.environ.get(_ENV) == directory:
            del os.environ[_ENV]
            os.environ.pop(_AGGREGATED, None)


def forget_snapshot(pid: int) -> None:
    """A child exited: its report no longer counts."""
    directory = dashboard_directory()
    if directory is None:
        return
    for name in os.listdir(directory):
        if name.endswith(f"-{pid}.json"):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


def _write(directory: str, name: str, body: Dict[str, Any]) -> None:
    """Replace ``name`` whole (a reader never sees half a file)."""
    path = os.path.join(directory, name)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        json.dump(body, out, separators=(",", ":"))
    os.replace(temporary, path)


def report(name: str, collect: Callable[[], Dict[str, Any]], directory: Optional[str] = None) -> Any:
    """Write ``collect()`` to this process's report once a second, from a greenlet; None
    (nothing runs) when the dashboard is off."""
    directory = directory or dashboard_directory()
    if directory is None:
        return None
    filename = f"{name}-{os.getpid()}.json"

    def run() -> None:
        while True:
            try:
                _write(directory, filename, {**collect(), "time": time.time()})
            except OSError:
                return  # the directory is gone: the server is stopping
            gevent.sleep(INTERVAL)

    return gevent.spawn(run)


def report_worker(worker: Any, directory: str) -> Any:
    """A worker's report: its numbers, its links, its top channels."""
    hub = worker.wss.hub
    hub.channel_messages = {}
    taken = [time.monotonic()]

    def collect() -> Dict[str, Any]:
        messages, hub.channel_messages = hub.channel_messages, {}
        now = time.monotonic()
        seconds, taken[0] = max(now - taken[0], 1e-3), now
        by_subscribers, by_messages = top_channels(hub.registry, messages, TOP_CHANNELS)
        return {**process_numbers("worker", worker.id), **worker_numbers(worker),
                "link_list": hub.connector.describe_links(), "top_subscribers": by_subscribers,
                "top_messages": [[channel, count / seconds] for channel, count in by_messages]}

    return report("worker", collect, directory)


class Aggregator:
    """One view of every process, once a second, with 15 minutes of history.

    Args:
        directory: where the processes report.
        processes: the table of processes (``kind``, ``id``, ``pid``, ``started``,
            ``restarts``, ``state``; the master's own row first), or None: the processes
            that report (no master of ours: gunicorn's workers, a test's worker).
        server: what the page says of the server (mode, scaler).
        filename: the aggregate's file in ``directory``.
    """

    def __init__(self, directory: str, processes: Optional[Callable[[], List[Dict[str, Any]]]],
                 server: Dict[str, Any], filename: str = CLUSTER_FILE) -> None:
        self.directory = directory
        self.filename = filename
        self.processes = processes
        self.server = server
        self.history: Deque[List[float]] = deque(maxlen=HISTORY_POINTS)
        self._previous: Dict[int, Dict[str, Any]] = {}  # pid -> its last report
        self._rates: Dict[int, Dict[str, float]] = {}

    def run(self) -> None:
        """Aggregate once a second until killed."""
        while True:
            gevent.sleep(INTERVAL)
            try:
                self.write(self.tick(time.time()))
            except OSError:
                return  # the directory is gone: the server is stopping

    def write(self, view: Dict[str, Any]) -> None:
        _write(self.directory, self.filename, view)

    def reports(self, now: float) -> Dict[int, Dict[str, Any]]:
        """The processes' latest reports, by pid (stale ones left out)."""
        found: Dict[int, Dict[str, Any]] = {}
        for name in os.listdir(self.directory):
            if not name.endswith(".json") or name.startswith("cluster"):
                continue
            try:
                with open(os.path.join(self.directory, name)) as source:
                    body = json.load(source)
            except (OSError, ValueError):
                continue  # replaced or removed meanwhile
            if isinstance(body, dict) and now - body.get("time", 0) <= STALE_AFTER:
                found[body["pid"]] = body
        return found

    def tick(self, now: float) -> Dict[str, Any]:
        """The view now: processes, workers with rates, links, top channels, history."""
        reports = self.reports(now)
        processes = []
        table = self.processes() if self.processes is not None else [
            child_row(body["kind"], body["id"], pid, body["started"], 0, "serving") for pid, body in reports.items()]
        for row in table:
            reported = reports.get(row["pid"], {})
            processes.append({**row, "rss": reported.get("rss", row.get("rss")),
                              "uptime": now - row.get("started", reported.get("started", now))})
        workers = [self._worker_row(body) for body in reports.values() if body["kind"] == "worker"]
        workers.sort(key=lambda row: (len(row["id"]), row["id"]))
        self._previous = dict(reports)
        self._rates = {pid: rates for pid, rates in self._rates.items() if pid in reports}
        totals = self._totals(workers, reports)
        self.history.append([round(now, 3), totals["connections"], totals["messages_in_rate"],
                             totals["messages_out_rate"], totals["deliveries_rate"], totals["drops_rate"]])
        return {"time": now, "server": self.server, "totals": totals, "processes": processes, "workers": workers,
                "links": self._links(reports), "channels": self._channels(reports),
                "history": {"columns": ["time", "connections", "messages_in", "messages_out", "deliveries", "drops"],
                            "points": list(self.history)}}

    def _worker_row(self, body: Dict[str, Any]) -> Dict[str, Any]:
        pid = body["pid"]
        previous = self._previous.get(pid)
        rates = self._rates.setdefault(pid, dict.fromkeys(_RATES, 0.0))
        if previous is not None and body["time"] > previous["time"]:
            seconds = body["time"] - previous["time"]
            for name in _RATES:
                delta = _count(body, name) - _count(previous, name)
                rates[name] = max(0.0, delta) / seconds
        return {"id": body["id"], "pid": pid, "connections": body["connections"],
                "subscriptions": body["subscriptions"], "channels": body["channels"],
                "outbox_bytes": body["outbox_bytes"], "drops": body["drops"], "refused": body["refused"],
                "links_up": body["links_up"], "links": body["links"],
                **{f"{name}_rate": round(rate, 2) for name, rate in rates.items()}}

    @staticmethod
    def _totals(workers: List[Dict[str, Any]], reports: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
        totals: Dict[str, Any] = {name: sum(row[name] for row in workers)
                                  for name in ("connections", "subscriptions", "outbox_bytes")}
        for name in _RATES:
            totals[f"{name}_rate"] = round(sum(row[f"{name}_rate"] for row in workers), 2)
        drops: Dict[str, int] = {}
        for body in reports.values():  # brokers and the hub drop too
            for reason, count in body.get("drops", {}).items():
                drops[reason] = drops.get(reason, 0) + count
        totals["drops"] = drops
        totals["workers"] = len(workers)
        return totals

    @staticmethod
    def _links(reports: Dict[int, Dict[str, Any]]) -> List[Dict[str, Any]]:
        links = []
        for body in sorted(reports.values(), key=lambda b: (b["kind"], len(b["id"]), b["id"])):
            for link in body.get("link_list", ()):
                links.append({"process": f"{body['kind']} {body['id']}", **link})
        return links

    @staticmethod
    def _channels(reports: Dict[int, Dict[str, Any]]) -> Dict[str, List[Any]]:
        subscribers: Dict[str, int] = {}
        messages: Dict[str, float] = {}
        for body in reports.values():
            for channel, count in body.get("top_subscribers", ()):
                subscribers[channel] = subscribers.get(channel, 0) + count
            for channel, rate in body.get("top_messages", ()):
                # every worker with subscribers sees each message once: the busiest one's rate is the channel's
                messages[channel] = max(messages.get(channel, 0.0), rate)
        top = sorted(subscribers.items(), key=lambda item: -item[1])[:10]
        busiest = sorted(messages.items(), key=lambda item: -item[1])[:10]
        return {"by_subscribers": [list(item) for item in top],
                "by_messages": [[channel, round(rate, 2)] for channel, rate in busiest]}


def _count(body: Dict[str, Any], name: str) -> float:
    if name == "drops":
        return float(sum(body.get("drops", {}).values()))
    return float(body.get(name, 0))


def child_row(kind: str, slot: Any, pid: int, started: float, restarts: int, state: str) -> Dict[str, Any]:
    """A row of the table of processes."""
    return {"kind": kind, "id": short_name(slot), "pid": pid, "started": started, "restarts": restarts,
            "state": state}


def short_name(slot: Any) -> str:
    """How the page names a process's slot: ``2``, ``9400``, ``broker-1.sock`` (a private path's end)."""
    name = describe(slot)
    return os.path.basename(name) if name.startswith("/") else name
