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
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

__all__ = ["TIMEOUT_FACTOR", "wait_until", "free_port", "ServerProcess", "DeliveryLog", "OrderReport",
           "check_delivery_order"]

#: Multiplies every test deadline (``CLUSTERWS_TESTS_TIMEOUT_FACTOR``, for slow machines).
TIMEOUT_FACTOR = float(os.environ.get("CLUSTERWS_TESTS_TIMEOUT_FACTOR", "1"))

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns a true value, and return that value.

    Between polls it yields to gevent when gevent is loaded, so that greenlets
    (a :class:`~clusterws_gevent.client.Client`'s reader) run while a plain test waits.

    Raises:
        TimeoutError: still false after ``timeout`` seconds (times TIMEOUT_FACTOR).
    """
    gevent = sys.modules.get("gevent")
    pause = gevent.sleep if gevent is not None else time.sleep
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout * TIMEOUT_FACTOR:.1f}s")
        pause(interval)


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

    def stop(self, stop_timeout: float = 15.0) -> None:
        """SIGTERM to the server (a master stops its children itself), then SIGKILL to
        whatever is left of its process group."""
        process = self.process
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent too
        except ProcessLookupError:
            pass
        process.wait()
        self._log.close()


class DeliveryLog:
    """What one subscriber received, checked as it arrives.

    Messages carry a publisher id and a sequence number per (publisher, channel),
    counting from 0. Anything but the next number is a gap (numbers skipped), a
    duplicate (seen before) or a reordering (a skipped number arriving late).
    """

    def __init__(self, channels: Set[str]) -> None:
        self.channels = channels
        self.next: Dict[Tuple[Any, str], int] = {}
        self.missing: Dict[Tuple[Any, str], Set[int]] = {}
        self.received = 0
        self.gaps = self.duplicates = self.reorders = self.foreign = 0
        self.examples: List[str] = []

    def record(self, publisher: Any, channel: str, seq: int) -> None:
        """Check one delivery."""
        self.received += 1
        if channel not in self.channels:
            self.foreign += 1
            self._example(f"message of {channel!r}, not subscribed")
            return
        key = (publisher, channel)
        expected = self.next.get(key, 0)
        if seq == expected:
            self.next[key] = seq + 1
        elif seq > expected:
            self.gaps += seq - expected
            self.missing.setdefault(key, set()).update(range(expected, seq))
            self.next[key] = seq + 1
            self._example(f"{key}: got {seq}, expected {expected}")
        elif seq in self.missing.get(key, ()):
            self.missing[key].discard(seq)
            self.gaps -= 1
            self.reorders += 1
            self._example(f"{key}: {seq} arrived after {expected - 1}")
        else:
            self.duplicates += 1
            self._example(f"{key}: {seq} again")

    def _example(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)


class OrderReport:
    """The result of :func:`check_delivery_order`."""

    def __init__(self, logs: List[DeliveryLog], expected: List[int], published: int, seconds: float) -> None:
        self.logs = logs
        self.expected = expected
        self.published = published
        self.seconds = seconds

    @property
    def lost(self) -> int:
        """Messages a subscriber should have received and did not."""
        return sum(max(0, want - log.received) for log, want in zip(self.logs, self.expected))

    @property
    def ok(self) -> bool:
        """No loss, gap, duplicate, reordering or foreign message anywhere."""
        return self.lost == 0 and not any(log.gaps or log.duplicates or log.reorders or log.foreign
                                          for log in self.logs)

    def __str__(self) -> str:
        lines = [f"{self.published} messages published in {self.seconds:.1f}s; lost {self.lost}"]
        for i, (log, want) in enumerate(zip(self.logs, self.expected)):
            lines.append(f"  subscriber {i}: {log.received}/{want} gaps={log.gaps} duplicates={log.duplicates} "
                         f"reorders={log.reorders} foreign={log.foreign} {'; '.join(log.examples)}")
        return "\n".join(lines)


def check_delivery_order(urls: Sequence[str], *, messages: int = 100_000, publishers: int = 4, channels: int = 4,
                         subscribers: int = 4, round_size: int = 2000, timeout: float = 120.0) -> OrderReport:
    """Publish sequence-numbered messages and check every subscriber got them all, once, in order.

    ``publishers`` clients publish (client publish, ``["p", channel, data]``) to
    ``channels`` channels in turn, concurrently, in rounds of ``round_size`` messages;
    a round ends when every subscriber has what it should (flow control, so that no
    outbox overflows). Subscriber ``i`` joins every channel when ``i`` is even and the
    even-numbered channels only when odd, which also checks that nothing else arrives.
    Connections go to ``urls`` in turn (several workers or servers).

    Returns:
        an :class:`OrderReport`; ``report.ok`` is the verdict, ``str(report)`` the details.
    """
    import gevent

    from .client import Client

    names = [f"order-{c}" for c in range(channels)]
    clients: List[Any] = []
    logs: List[DeliveryLog] = []
    try:
        for i in range(subscribers):
            joined = names if i % 2 == 0 else names[::2]
            client = Client(urls[i % len(urls)])
            clients.append(client)
            log = DeliveryLog(set(joined))
            logs.append(log)
            for name in joined:
                channel = client.subscribe(name)
                channel.watch(lambda m, name=name, log=log: log.record(m["p"], name, m["s"]))
                if not channel.wait_subscribed(10):
                    raise RuntimeError(f"subscription to {name} declined")
        publishing = []
        for p in range(publishers):
            client = Client(urls[(subscribers + p) % len(urls)])
            clients.append(client)
            chans = [client.subscribe(name) for name in names]
            for channel in chans:
                channel.wait_subscribed(10)
            publishing.append(chans)
        expected = [0] * subscribers
        seqs = [[0] * channels for _ in range(publishers)]
        started = time.monotonic()
        sent = 0

        def publish(p: int, count: int, first: int) -> None:
            for k in range(first, first + count):
                c = k % channels
                publishing[p][c].publish({"p": p, "s": seqs[p][c]})
                seqs[p][c] += 1
                for i in range(subscribers):
                    if i % 2 == 0 or c % 2 == 0:
                        expected[i] += 1

        while sent < messages:
            per_publisher = max(1, min(round_size, messages - sent) // publishers)
            gevent.joinall([gevent.spawn(publish, p, per_publisher, sent // publishers) for p in range(publishers)],
                           raise_error=True)
            sent += per_publisher * publishers
            try:
                wait_until(lambda: all(log.received >= want for log, want in zip(logs, expected)), timeout,
                           interval=0.005, message="every subscriber got its messages")
            except TimeoutError:
                return OrderReport(logs, expected, sent, time.monotonic() - started)
        return OrderReport(logs, expected, sent, time.monotonic() - started)
    finally:
        for client in clients:
            client.close(timeout=1)
