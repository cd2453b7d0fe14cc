"""What a process counts, read one way: the Prometheus exporter (``metrics.py``) and the
dashboard (``dashboard.py``) both take their numbers from here, so they never disagree.

The hot paths only bump plain integers (``websocket/stats.py``, the hub's counters, the
connectors' drops); these functions read them, at most once a second, without walking
the sockets.
"""
from __future__ import annotations

import heapq
import os
import time
from typing import Any, Dict, List, Tuple

from ..net.outbox import Outbox

__all__ = ["worker_numbers", "worker_drops", "process_numbers", "top_channels", "rss_bytes", "STARTED"]

#: When this process started (wall clock), or when it was forked: reset by ``process_numbers(forked=True)``.
STARTED = [time.time()]
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), or its peak where there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_numbers(kind: str, slot: Any) -> Dict[str, Any]:
    """What every process reports: who it is, since when, its memory."""
    return {"kind": kind, "id": str(slot), "pid": os.getpid(), "started": STARTED[0], "rss": rss_bytes()}


def worker_drops(worker: Any) -> Dict[str, int]:
    """What a worker dropped since it started, by reason: ``slow_consumer`` (a socket's outbox
    full, ``outbox_overflow="drop"``), ``gap`` (numbered messages that never came from their
    owner), and its connector's (``broker_link_down``, ``redis_down``, ``invalid``...)."""
    wss = worker.wss
    drops = dict(wss.hub.connector.lost())
    for reason, count in wss.hub.lost.items():
        drops[reason] = drops.get(reason, 0) + count
    if wss.stats.dropped:
        drops["slow_consumer"] = wss.stats.dropped
    return drops


def worker_numbers(worker: Any) -> Dict[str, Any]:
    """A worker's counters (totals since it started) and gauges (now)."""
    wss = worker.wss
    stats, hub = wss.stats, wss.hub
    up, links = hub.connector.links_up()
    return {
        "messages_in": stats.messages_in,
        "messages_out": stats.messages_out,
        "deliveries": hub.deliveries,
        "batches": hub.batches,
        "slow_consumer_closes": stats.slow_consumer_closes,
        "refused": dict(stats.refused),
        "drops": worker_drops(worker),
        "connections": len(wss),
        "channels": len(hub.registry),
        "subscriptions": hub.registry.memberships,
        "outbox_bytes": Outbox.held,
        "links_up": up,
        "links": links,
    }


def top_channels(registry: Any, messages: Dict[str, int], count: int) -> Tuple[List[Any], List[Any]]:
    """The ``count`` channels with the most subscribers here, and with the most ``messages``
    (a count per channel), each as ``[channel, number]``."""
    members = registry.members
    by_subscribers = heapq.nlargest(count, registry.channels(), key=lambda channel: len(members(channel)))
    by_messages = heapq.nlargest(count, messages.items(), key=lambda item: item[1])
    return [[channel, len(members(channel))] for channel in by_subscribers], [list(item) for item in by_messages]
