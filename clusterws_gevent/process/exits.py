"""The exit codes of the master and of its children, in one place, and how a wait
status reads in a log line."""
from __future__ import annotations

import os
import signal

__all__ = ["OK", "FAILED", "WORKER_BOOT_ERROR", "BROKER_BOOT_ERROR", "APP_LOAD_ERROR", "describe_status"]

#: Stopped as asked.
OK = 0
#: Stopped by an error (the log says which).
FAILED = 1
#: A worker whose worker function raised (gunicorn's WORKER_BOOT_ERROR).
WORKER_BOOT_ERROR = 3
#: A broker that could not listen on its address.
BROKER_BOOT_ERROR = 4
#: A worker that could not import the app or the worker function (gunicorn's APP_LOAD_ERROR).
APP_LOAD_ERROR = 5

_MEANINGS = {
    WORKER_BOOT_ERROR: " (the worker function failed)",
    BROKER_BOOT_ERROR: " (the broker could not listen)",
    APP_LOAD_ERROR: " (the app could not be imported)",
}


def describe_status(status: int) -> str:
    """A wait status in words ("killed by SIGKILL (perhaps out of memory?)", "exit code 3 (...)")."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"killed by {name}" + (" (perhaps out of memory?)" if sig == signal.SIGKILL else "")
    code = os.WEXITSTATUS(status)
    return f"exit code {code}{_MEANINGS.get(code, '')}"
