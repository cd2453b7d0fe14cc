"""Helpers shared by the integration tests: connecting, finding workers, subscribing, memory."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List

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

    def __init__(self, directory, *extra: str, port: int = 0) -> None:
        from clusterws_gevent.testing import free_port

        self.directory = str(directory)
        self.port = port or free_port()
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

    def shard_numsub(self, key: str) -> int:
        """``PUBSUB SHARDNUMSUB key`` on this node (a cluster's)."""
        return int(self.client().execute_command("PUBSUB", "SHARDNUMSUB", key)[1])


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    from clusterws_gevent.testing import free_port

    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """A Redis Cluster of the test's own: ``masters`` masters with one replica each
    (``redis-server --cluster-enabled yes``, joined by ``redis-cli --cluster create``), on
    free loopback ports, a node timeout of 1 s (failover within a few seconds), ready once
    every replica synced.
    ``stop()`` stops every node."""

    def __init__(self, directory, masters: int = 3, replicas: int = 1) -> None:
        self.directory = Path(directory)
        self.nodes: List[RedisServer] = []
        self.masters = masters
        self.replicas = replicas

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> RedisCluster:
        from clusterws_gevent.testing import wait_until

        for index in range(self.masters * (1 + self.replicas)):
            directory = self.directory / f"node{index}"
            directory.mkdir(parents=True, exist_ok=True)
            port = _cluster_port()
            self.nodes.append(RedisServer(directory, "--cluster-enabled", "yes", "--cluster-config-file",
                                          f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                                          "--repl-diskless-sync-delay", "0", port=port).start())
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        wait_until(self.healthy, 30, message="the cluster's state to be ok on every node")
        wait_until(self.replicas_synced, 30, message="every replica in sync with its master")
        return self

    def replicas_synced(self) -> bool:
        """Every replica's link to its master is up (a replica that never synced cannot fail over),
        and CLUSTER SLOTS lists it: Redis lists a replica only once its replication offset moved,
        so each master gets a write first."""
        count = 0
        for node in self.running():
            info = node.client().info("replication")
            if info.get("role") == "slave":
                if info.get("master_link_status") != "up":
                    return False
                count += 1
        if count != self.masters * self.replicas:
            return False
        for node in self.running():
            if node.client().info("replication").get("role") == "master":
                node.client().execute_command("FLUSHALL")  # replicated (it is empty): the offset moves
        slots = self.running()[0].client().execute_command("CLUSTER", "SLOTS")
        return all(len(entry) - 3 >= self.replicas for entry in slots)

    def healthy(self) -> bool:
        """Every running node says cluster_state:ok and knows every slot's master."""
        try:
            for node in self.nodes:
                if node.process is None:
                    continue
                info = node.client().execute_command("CLUSTER", "INFO")
                info = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in info or "cluster_slots_assigned:16384" not in info:
                    return False
            return True
        except Exception:  # noqa: BLE001 - a node still starting
            return False

    def node_of(self, key: str) -> RedisServer:
        """The running master that serves ``key``'s slot now."""
        slot = int(self.running()[0].client().execute_command("CLUSTER", "KEYSLOT", key))
        for node in self.running():
            for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(key)

    def running(self) -> List[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A running replica of ``master``."""
        for node in self.running():
            role = node.client().execute_command("ROLE")
            if role[0] in (b"slave", "slave") and int(role[2]) == master.port:
                return node
        raise LookupError(f"no replica of {master.port}")

    def is_replica_of(self, node: RedisServer, master: RedisServer) -> bool:
        role = node.client().execute_command("ROLE")
        return role[0] in (b"slave", "slave") and int(role[2]) == master.port

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class SteadyTraffic:
    """Publishers on one server and subscribers on the other, a message every few ms,
    each subscriber's deliveries checked for duplicates and reordering as they arrive."""

    def __init__(self, publish_url: str, subscribe_urls: List[str], publishers: int = 2, name: str = "steady") -> None:
        from clusterws_gevent.client import Client
        from clusterws_gevent.testing import DeliveryLog

        self.name = name
        self.sent: Dict[int, int] = {}  # publisher -> messages it published
        self.logs: List[DeliveryLog] = []
        self.clients: List[Client] = []
        for url in subscribe_urls:
            client = Client(url)
            log = DeliveryLog({name})
            channel = client.subscribe(name)
            channel.watch(lambda m, log=log: log.record(m["p"], name, m["s"]))
            assert channel.wait_subscribed(5)
            self.clients.append(client)
            self.logs.append(log)
        self.publishers = []
        for _ in range(publishers):
            client = Client(publish_url)
            channel = client.subscribe(name)
            assert channel.wait_subscribed(5)
            self.clients.append(client)
            self.publishers.append(channel)
        import gevent

        self._tasks = [gevent.spawn(self._publish, p, channel) for p, channel in enumerate(self.publishers)]

    def _publish(self, p: int, channel: Any) -> None:
        import gevent

        seq = 0
        while True:
            channel.publish({"p": p, "s": seq})
            seq += 1
            self.sent[p] = seq
            gevent.sleep(0.005)

    def stop_publishing(self) -> None:
        """Stop the publishers (the subscribers go on receiving)."""
        import gevent

        gevent.killall(self._tasks)

    def describe(self) -> str:
        """What each subscriber got against what was sent (for failure messages)."""
        return f"sent {self.sent}; " + "; ".join(f"next {log.next} gaps {log.gaps} {log.examples}" for log in self.logs)

    def complete(self) -> bool:
        """Every subscriber got every message published, once, in order, nothing missing."""
        return all(log.next.get((p, self.name), 0) == sent and not log.gaps
                   for log in self.logs for p, sent in self.sent.items())

    def received(self) -> int:
        return sum(log.received for log in self.logs)

    def flowing(self, within: float) -> float:
        """Seconds until every subscriber got something new (at most ``within``)."""
        from clusterws_gevent.testing import wait_until

        started = time.monotonic()
        before = [log.received for log in self.logs]
        wait_until(lambda: all(log.received > seen for log, seen in zip(self.logs, before)), within,
                   interval=0.01, message="deliveries resume")
        return time.monotonic() - started

    def stalled(self, within: float, quiet: float = 0.3) -> None:
        """Wait until nothing was delivered for ``quiet`` seconds (the fault took hold)."""
        from clusterws_gevent.testing import wait_until

        seen = [self.received(), time.monotonic()]

        def quiet_for_a_while() -> bool:
            now = self.received()
            if now != seen[0]:
                seen[:] = [now, time.monotonic()]
            return time.monotonic() - seen[1] >= quiet

        wait_until(quiet_for_a_while, within, message="deliveries stop")

    def stop(self) -> None:
        import gevent

        gevent.killall(self._tasks)
        for client in self.clients:
            client.close(timeout=1)

    def assert_never_duplicated_nor_reordered(self) -> None:
        for log in self.logs:
            assert log.duplicates == 0 and log.reorders == 0 and log.foreign == 0, log.examples


@contextmanager
def steady_traffic_between(a_server, b_server):
    """Publishers on ``a_server``, two subscribers on ``b_server``, flowing; on exit the
    deliveries were never duplicated nor reordered and no worker restarted."""
    servers = [a_server, b_server]
    traffic = SteadyTraffic(f"ws://127.0.0.1:{a_server.port}/", [f"ws://127.0.0.1:{b_server.port}/"] * 2)
    traffic.flowing(5)
    pids = {pid for server in servers for pid in worker_pids(server)}
    yield traffic
    traffic.stop()
    traffic.assert_never_duplicated_nor_reordered()
    assert {pid for server in servers for pid in worker_pids(server)} == pids  # no worker restarted


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


def http_head(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send the raw ``request`` on a new connection; what came back up to the end of the
    answer's head (all of it when the server closed first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
        return head


def metric(server, name: str) -> float:
    """A metric's value on ``server``'s /metrics (0 when absent)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


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
