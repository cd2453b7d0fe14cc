"""What this process serves, for code that has no handle on it (a Flask view, a greenlet).

``running`` is the :class:`~clusterws_gevent.ClusterWS` whose ``serve()`` runs in this
process (set before the workers fork, so every worker has it); the running Worker is
``process.worker.current_worker()``.
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["running"]

#: The ClusterWS that serves in this process, or None.
running: Optional[Any] = None
