"""``Mode.Scale``: the master process (workers and brokers)."""
from __future__ import annotations

from ..log import Log
from ..options import Options

__all__ = ["run_master"]


def run_master(options: Options, log: Log) -> int:
    """Run the master of ``Mode.Scale``; returns the exit code."""
    log.error("Mode.Scale (workers and brokers) is not available yet; run with mode=Mode.Single "
              "(--mode single)")
    return 2
