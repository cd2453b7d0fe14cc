"""Helpers for testing applications built on clusterws_gevent (and for our own tests).

Nothing here sleeps to synchronise: wait for a condition, with a deadline.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

__all__ = ["TIMEOUT_FACTOR", "wait_until", "free_port", "ServerProcess"]

#: Multiplies every test deadline (``CLUSTERWS_TESTS_TIMEOUT_FACTOR``, for slow machines).
TIMEOUT_FACTOR = float(os.environ.get("CLUSTERWS_TESTS_TIMEOUT_FACTOR", "1"))

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns a true value, and return that value.

    Raises:
        TimeoutError: still false after ``timeout`` seconds (times TIMEOUT_FACTOR).
    """
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout * TIMEOUT_FACTOR:.1f}s")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _connectable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class ServerProcess:
    """``python -m clusterws_gevent ARGS`` in its own process group, logging to a file.

    Use as a context manager: the whole process group is stopped on exit
    (SIGTERM, then SIGKILL after ``stop_timeout``).

    Args:
        args: the command-line arguments after ``python -m clusterws_gevent``.
        log_path: where the process's stdout and stderr go.
        cwd: working directory (the worker module is imported from it).
        ready_text: a log line fragment that says the server is ready.
        port: a port that must accept connections before the server counts as ready.
        env: extra environment variables.
    """

    def __init__(self, args: Sequence[str], log_path: str, cwd: Optional[str] = None, ready_text: str = ">>> Worker",
                 port: Optional[int] = None, env: Optional[Dict[str, str]] = None, ready_count: int = 1,
                 command: Optional[List[str]] = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.cwd = cwd
        self.ready_text = ready_text
        self.ready_count = ready_count
        self.port = port
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.command = command or [sys.executable, "-m", "clusterws_gevent"]
        self.process: Optional[subprocess.Popen[bytes]] = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until it is ready."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the process's life, closed in stop()
        self.process = subprocess.Popen(self.command + self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=self.cwd, env=self.env, start_new_session=True)
        try:
            wait_until(self._ready, timeout, interval=0.02, message=f"server ready ({self.log_path})")
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"server did not start; log:\n{self.log()[-3000:]}") from None

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}; log:\n{self.log()[-3000:]}")
        if self.log().count(self.ready_text) < self.ready_count:
            return False
        return self.port is None or _connectable("127.0.0.1", self.port)

    def log(self) -> str:
        """Everything the process wrote so far."""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, text: str, timeout: float = 5.0, count: int = 1) -> str:
        """Wait until ``text`` appears ``count`` times in the log; return the log."""
        return wait_until(lambda: self.log() if self.log().count(text) >= count else "", timeout,
                          message=f"{text!r} in the server log")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server process (not its group)."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit; returns its exit code."""
        assert self.process is not None
        return self.process.wait(timeout * TIMEOUT_FACTOR)

    def stop(self, stop_timeout: float = 10.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL)."""
        process = self.process
        if process is None:
            return
        try:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent too
        except ProcessLookupError:
            pass
        process.wait()
        self._log.close()
