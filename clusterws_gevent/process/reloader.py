"""``--reload`` (development): replace the workers when a source file they imported changes.

One worker (the first) watches the files of the modules it imported, outside the
standard library and the installed packages, and asks the master for a rolling
reload (SIGHUP) when one changes: new workers import the code as it is on disk
(without ``--preload``), and no connection is refused meanwhile. In ``Mode.Single``
the process stops (its sockets closed with 1001) and runs its command line again
(:func:`restart_command`). Polls mtimes, as gunicorn's default reloader does: no
dependency, and any file system works.
"""
from __future__ import annotations

import os
import signal
import sys
import sysconfig
from typing import Callable, Dict, List, Optional

import gevent

from ..log import Log

__all__ = ["source_files", "watch_sources", "restart_command", "POLL_INTERVAL"]

#: Seconds between two looks at the files.
POLL_INTERVAL = 1.0


def source_files() -> Dict[str, float]:
    """The app's own source files imported so far, with their mtimes."""
    paths = sysconfig.get_paths()
    installed = tuple({os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")})
    files: Dict[str, float] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if real.startswith(installed):
            continue
        try:
            files[real] = os.stat(real).st_mtime
        except OSError:
            continue
    return files


def restart_command() -> List[str]:
    """The command line that started this process (``python -m clusterws_gevent ...`` included)."""
    original = getattr(sys, "orig_argv", None)  # Python 3.10+
    if original:
        return [sys.executable, *original[1:]]
    if sys.argv and sys.argv[0].endswith("__main__.py"):  # python -m PACKAGE, on 3.9
        return [sys.executable, "-m", os.path.basename(os.path.dirname(sys.argv[0])), *sys.argv[1:]]
    return [sys.executable, *sys.argv]


def watch_sources(log: Log, interval: float = POLL_INTERVAL,
                  on_change: Optional[Callable[[str], None]] = None) -> None:
    """In a greenlet: once a source file changes, ``on_change(path)`` (by default, SIGHUP the
    master), then stop watching.

    The files' mtimes are read now, before this worker reports ready: a change made
    once it serves is always seen."""
    files = source_files()

    def loop() -> None:
        while True:
            gevent.sleep(interval)
            for path, mtime in files.items():
                try:
                    changed = os.stat(path).st_mtime != mtime
                except OSError:
                    changed = True
                if changed:
                    if on_change is not None:
                        on_change(path)
                    else:
                        log.info("%s changed; reloading the workers", path)
                        os.kill(os.getppid(), signal.SIGHUP)
                    return

    gevent.spawn(loop)
