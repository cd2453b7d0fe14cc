"""The master (issue 8): one event loop that loses no event, code reload on SIGHUP,
a bounded graceful stop, connections balanced by load, no fd leaked into children."""
from __future__ import annotations

import os
import re
import resource
import signal
import socket
import time
from pathlib import Path

import pytest
from helpers import ConnectionChurn, alive, connect, on_each_worker, subscribe, whoami, worker_pids

from clusterws_gevent.testing import wait_until
from wsclient import WSClient

APP = '''\
VERSION = {version}

from apps.basic import install


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        install(socket, {{}}, w.wss)
        socket.on("version", lambda data: socket.send("version", VERSION))
'''


@pytest.fixture
def versioned(tmp_path):
    """``write(version)`` writes the module ``versioned`` (in tmp_path) answering ``version``."""
    path = tmp_path / "versioned.py"

    def write(version: int) -> None:
        text = APP.format(version=version)
        path.write_text(text)
        mtime = time.time() + version  # a new mtime every time, whatever the clock's resolution
        os.utime(path, (mtime, mtime))

    write(1)
    return write, {"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}


def version_of_each_worker(server, count):
    """{pid: version} of the workers; a worker that is replaced meanwhile (it closes its
    sockets with 1001 before it answers) counts as version None: ask again."""
    versions = {}
    try:
        clients = on_each_worker(server, count)
    except (AssertionError, EOFError, OSError):  # reached a worker as it closed: ask again
        return {}
    for pid, client in clients.items():
        with client:
            client.emit("version")
            try:
                versions[pid] = client.recv_event("version")
            except (AssertionError, EOFError, OSError):  # a close frame, or the connection gone
                versions[pid] = None
    return versions


def broker_pids(server):
    return [int(p) for p in re.findall(r">>> Broker on: \S+, PID: (\d+)", server.log())]


def assert_cross_worker_publish(a, b, within):
    """A publish on b's worker reaches a's within ``within`` seconds (links may still be reconnecting)."""
    subscribe(a, "news")
    a.sock.settimeout(0.1)
    deadline = time.monotonic() + within
    while True:
        b.emit("publish", {"channel": "news", "data": "across"})
        try:
            assert a.recv_json() == ["p", None, {"news": ["across"]}]
            return
        except (TimeoutError, socket.timeout):
            assert time.monotonic() < deadline, "no cross-worker delivery"


def stuck_client(server):
    """A client that never answers the server's close frame (its worker stops slowly)."""
    client = connect(server)
    whoami(client)
    return client


# -- any event during any phase ------------------------------------------------------------------


def test_a_broker_killed_during_a_slow_reload_is_restarted_within_2s(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", "--close-timeout", "8", "--no-auto-ping",
                           workers=2, brokers=1)
    clients = on_each_worker(server)  # they never answer the close frame: each old worker takes 8 s to stop
    try:
        server.signal(signal.SIGHUP)
        server.wait_for_log("(replaced PID", timeout=15)  # an old worker is stopping, slowly
        (broker,) = broker_pids(server)
        os.kill(broker, signal.SIGKILL)
        killed = time.monotonic()
        server.wait_for_log(">>> Broker on:", count=2, timeout=5)
        assert time.monotonic() - killed < 2.0
        log = server.wait_for_log("(replaced PID", count=2, timeout=20)
        assert re.search(r">>> Broker on: \d+, PID: \d+ \(restarted\)", log)
        (_, a), (_, b) = on_each_worker(server).items()
        with a, b:
            assert_cross_worker_publish(a, b, within=3.0)
    finally:
        for client in clients.values():
            client.close()


def test_ttin_during_a_reload_gives_one_worker_more(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", workers=2, brokers=1)
    server.signal(signal.SIGHUP)
    server.wait_for_log("SIGHUP: replacing")
    server.signal(signal.SIGTTIN)
    server.wait_for_log("(replaced PID", count=2, timeout=20)
    server.wait_for_log(">>> Worker: 3, PID")
    workers = on_each_worker(server, count=3)
    for client in workers.values():
        client.close()
    assert len(workers) == 3


def test_a_worker_crash_during_a_reload_leaves_exactly_the_worker_count(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", "--no-auto-ping", "--log-level", "debug",
                           "--close-timeout", "3", workers=2, brokers=1)
    old = worker_pids(server)
    clients = on_each_worker(server)
    try:
        server.signal(signal.SIGHUP)
        server.wait_for_log("(replaced PID", timeout=15)
        for pid in old:  # the one being retired, and the one not replaced yet
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(re.findall(r"\(replaced PID|\(restarted\)", server.log())) >= 2, timeout=20,
                   message="the reload ends")
    finally:
        for client in clients.values():
            client.close()
    wait_until(lambda: len(master_children(server, "worker")) == 2, timeout=5, message="two workers")
    current = on_each_worker(server, count=2)
    for client in current.values():
        client.close()
    assert len(master_children(server, "worker")) == 2
    log = server.log()
    signalled = re.findall(r"sent (SIG\w+) to worker \d \(PID (\d+)\)", log)
    for sig in ("SIGTERM", "SIGKILL"):
        pids = [pid for name, pid in signalled if name == sig]
        assert len(pids) == len(set(pids)), f"a PID got {sig} twice: {signalled}"


def cpu_ticks(pid):
    """User CPU time of ``pid`` so far, in clock ticks."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11])


def master_children(server, kind):
    """PIDs of the master's live child processes of ``kind`` (from /proc)."""
    master = server.process.pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master and fields[0] != "Z" and b"clusterws_gevent" in cmdline:
            found.append(int(entry))
    workers = set(worker_pids_alive(server))
    return [pid for pid in found if (pid in workers) == (kind == "worker")]


def worker_pids_alive(server):
    pids = [int(p) for p in re.findall(r">>> Worker: \d+, PID: (\d+)", server.log())]
    return [pid for pid in pids if alive(pid)]


def test_a_sighup_during_a_reload_leaves_no_worker_on_older_code(serve, versioned):
    write, env = versioned
    server = serve("versioned:worker", "--workers", "3", "--no-auto-ping", mode="scale", ready_count=3, env=env)
    write(2)
    server.signal(signal.SIGHUP)
    server.wait_for_log("(replaced PID", timeout=15)  # the first worker runs version 2
    write(3)
    server.signal(signal.SIGHUP)
    wait_until(lambda: set(version_of_each_worker(server, 3).values()) == {3}, timeout=30,
               message="every worker on version 3", interval=0.5)


# -- heartbeats in every phase -------------------------------------------------------------------


def test_heartbeats_are_checked_during_shutdown(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--worker-timeout", "1.5", "--graceful-timeout", "60",
                           workers=1, brokers=1)
    (pid,) = worker_pids(server)
    with connect(server) as client:
        busy = cpu_ticks(pid)
        client.emit("hang")
        wait_until(lambda: cpu_ticks(pid) > busy + 10, message="the listener spins")
        stopped_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    assert time.monotonic() - stopped_at < 8
    assert "gave no sign of life" in server.log()


def test_heartbeats_are_checked_during_a_reload(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--worker-timeout", "1.5", "--restart-on-fail", workers=2,
                           brokers=1)
    (hung_pid, hung), (_, other) = on_each_worker(server).items()
    with hung, other:
        hung.emit("hang")
        server.signal(signal.SIGHUP)
        log = server.wait_for_log("gave no sign of life", timeout=10)
        assert f"PID {hung_pid}) gave no sign of life" in log
        wait_until(lambda: not alive(hung_pid), timeout=5)
    wait_until(lambda: len(worker_pids_alive(server)) == 2 and "SIGHUP" in server.log(), timeout=20)
    workers = on_each_worker(server, count=2)
    for client in workers.values():
        client.close()
    assert hung_pid not in workers


# -- graceful_timeout ------------------------------------------------------------------------------


def test_graceful_timeout_bounds_a_workers_whole_stop(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--graceful-timeout", "2", "--close-timeout", "30",
                           "--no-auto-ping", workers=1, brokers=1)
    client = stuck_client(server)  # never answers the close frame
    try:
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert client.recv_close()[0] == 1001
        assert server.wait(15) == 0
        took = time.monotonic() - started
    finally:
        client.close()
    assert 1.5 < took < 5.0, f"the stop took {took:.1f}s with graceful_timeout 2 and close_timeout 30"
    assert "did not finish the close handshake within the graceful timeout" in server.log()


# -- code reload -----------------------------------------------------------------------------------


def test_sighup_serves_the_new_code_without_refusing_a_connection(serve, versioned):
    write, env = versioned
    server = serve("versioned:worker", "--workers", "2", mode="scale", ready_count=2, env=env)
    assert set(version_of_each_worker(server, 2).values()) == {1}
    with ConnectionChurn(server) as churn:
        write(2)
        server.signal(signal.SIGHUP)
        server.wait_for_log("(replaced PID", count=2, timeout=20)
    assert churn.failures == [] and churn.successes
    assert set(version_of_each_worker(server, 2).values()) == {2}


def test_preload_imports_once_and_keeps_the_code(serve, versioned):
    write, env = versioned
    server = serve("versioned:worker", "--workers", "2", "--preload", mode="scale", ready_count=2, env=env)
    write(2)
    server.signal(signal.SIGHUP)
    server.wait_for_log("(replaced PID", count=2, timeout=20)
    assert set(version_of_each_worker(server, 2).values()) == {1}


def test_reload_replaces_the_workers_when_a_source_file_changes(serve, versioned):
    write, env = versioned
    server = serve("versioned:worker", "--workers", "2", "--reload", mode="scale", ready_count=2, env=env)
    write(2)
    server.wait_for_log("versioned.py changed; reloading the workers", timeout=10)
    server.wait_for_log("(replaced PID", count=2, timeout=20)
    assert set(version_of_each_worker(server, 2).values()) == {2}


# -- balance ------------------------------------------------------------------------------------


@pytest.fixture
def many_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_connections(server, count):
    clients = []
    for _ in range(count):
        client = WSClient(server.port, "/")
        client.recv_json()
        clients.append(client)
    return clients


def spread(clients):
    counts = {}
    for client in clients:
        pid = whoami(client)
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def test_long_lived_connections_are_balanced_by_load(serve_cluster, many_files):
    server = serve_cluster("apps.pubsub:worker", "--restart-on-fail", "--no-auto-ping", workers=4, brokers=1)
    clients = open_connections(server, 1000)
    try:
        counts = spread(clients)
        assert len(counts) == 4 and max(counts.values()) <= 1.15 * 250, counts
        victim = max(counts, key=counts.get)
        os.kill(victim, signal.SIGKILL)
        server.wait_for_log("(restarted)", timeout=10)
        fresh = open_connections(server, 200)
        clients += fresh
        after = spread(fresh)
        new_pid = int(re.search(r">>> Worker: \d, PID: (\d+) \(restarted\)", server.log()).group(1))
        mean = (1000 - counts[victim] + 200) / 4
        assert after.get(new_pid, 0) >= 0.6 * mean, (after, mean)
    finally:
        for client in clients:
            client.close()


# -- file descriptors ------------------------------------------------------------------------------


def fd_targets(pid):
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return targets


def test_children_hold_only_their_own_heartbeat_and_pipe_ends(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", workers=3, brokers=2)
    master_pipes = {t for t in fd_targets(server.process.pid) if t.startswith("pipe:")}
    for pid in worker_pids(server) + broker_pids(server):
        targets = fd_targets(pid)
        heartbeats = [t for t in targets if t.endswith("(deleted)")]
        pipes = [t for t in targets if t.startswith("pipe:")]
        assert len(heartbeats) == (1 if pid in worker_pids(server) else 0), (pid, targets)
        # its ready pipe's write end and the lifeline's read end; no sibling's ends
        shared = [t for t in pipes if t in master_pipes]
        assert len(shared) <= 2, (pid, pipes, master_pipes)


def test_a_burst_of_connections_is_not_held_back_by_the_balancing(serve_cluster, many_files):
    """Every worker may hold back at once (each above the least loaded plus one): the re-check
    must be quick, or a burst waits in the kernel's queue (1,000 took 31 s with a 0.25 s re-check)."""
    from concurrent.futures import ThreadPoolExecutor

    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", workers=4, brokers=1)
    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        clients = list(pool.map(lambda _: WSClient(server.port, "/"), range(600)))
    took = time.monotonic() - started
    try:
        counts = spread(clients)
    finally:
        for client in clients:
            client.close()
    assert took < 5.0, f"600 concurrent connections took {took:.1f}s"
    assert max(counts.values()) <= 1.15 * 150, counts
