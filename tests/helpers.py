"""Helpers shared by the integration tests: connecting, finding workers, subscribing, memory."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from wsclient import WSClient


def connect(server, path="/"):
    client = WSClient(server.port, path)
    client.recv_json()
    return client


def whoami(client):
    client.emit("whoami")
    return client.recv_event("whoami")


def on_each_worker(server, count=2, attempts=60):
    """One connected client per worker (connections are spread by the kernel)."""
    found, extra = {}, []
    for _ in range(attempts):
        client = connect(server)
        pid = whoami(client)
        if pid in found:
            extra.append(client)
        else:
            found[pid] = client
        if len(found) == count:
            break
    for client in extra:
        client.close()
    assert len(found) == count, f"connections reached {len(found)} of {count} workers"
    return found


def subscribe(client, *channels):
    client.send_text(json.dumps(["s", "s", list(channels)]))
    return client.recv_json()


def worker_pids(server):
    return [int(pid) for pid in re.findall(r">>> Worker: \d+, PID: (\d+)", server.log())]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False




class RedisServer:
    """A ``redis-server`` of the test's own on a free loopback port (no persistence);
    ``restart()`` brings it back on the same port."""

    def __init__(self, directory, *extra: str) -> None:
        from clusterws_gevent.testing import free_port

        self.directory = str(directory)
        self.port = free_port()
        self.extra = list(extra)
        self.process = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import subprocess

        from clusterws_gevent.testing import wait_until

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, message=f"redis-server on {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def numsub(self, key: str) -> int:
        return int(dict(self.client().pubsub_numsub(key))[key.encode()])


class ConnectionChurn:
    """In a thread, opens connections to ``server`` one after another, each checked by
    ``exchange(client)``; records every success and every failure (a refused or reset
    connection is the finding). Use as a context manager: the thread stops on exit."""

    def __init__(self, server, exchange=None) -> None:
        import threading

        self.server = server
        self.exchange = exchange or (lambda client: None)
        self.successes: list = []
        self.failures: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(self.server) as client:
                    self.exchange(client)
                    self.successes.append(1)
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(exc))

    def __enter__(self) -> ConnectionChurn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (``VmRSS``) or its peak (``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> int:
    """Make a process's peak resident memory (``VmHWM``) its current one (Linux's clear_refs);
    returns that, in KiB: what ``rss_kib(pid, "VmHWM")`` later compares with."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")
    return rss_kib(pid, "VmHWM")


UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def open_idle(port, count, batch=50, headers=b"", tls=None):
    """``count`` upgraded connections that then say nothing, opened ``batch`` at a time
    (with extra ``headers`` lines; over TLS with the client context ``tls``)."""
    sockets = []
    for _ in range(0, count, batch):
        opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(batch)]
        if tls is not None:
            opened = [tls.wrap_socket(sock, server_hostname="localhost") for sock in opened]
        for sock in opened:
            sock.sendall(UPGRADE + headers + b"\r\n")
        for sock in opened:
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                assert data, "the server closed a connection during its upgrade"
                head += data
            assert head.startswith(b"HTTP/1.1 101 ")
        sockets += opened
    return sockets


TESTS_DIR = Path(__file__).resolve().parent


def start_flooder(port: int, seconds: float, kind: str = "event") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TESTS_DIR / "flood.py"), str(port), str(seconds), kind],
                            cwd=str(TESTS_DIR), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def echo_latencies(port: int, seconds: float) -> List[float]:
    """Round trips of one well-behaved client, back to back, for ``seconds``."""
    latencies = []
    with WSClient(port, "/", timeout=10) as client:
        client.recv_json()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            client.emit("echo", "ping")
            assert client.recv_event("echo") == "ping"
            latencies.append(time.perf_counter() - started)
    return latencies


def p99(values: List[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]
