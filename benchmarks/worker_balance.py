"""How long-lived connections spread over the workers of Mode.Scale, per balance mode.

For each of ``--balance`` shared-socket (the accept race on one shared listening socket),
reuseport (a socket per worker, SO_REUSEPORT: the kernel hashes) and least-connections
(ours, process/balance.py): starts a cluster (tests/apps/basic.py), opens CONNS WebSockets
one after another and keeps them open, asks each which worker it reached, then kills the
busiest worker, waits for its replacement, opens AFTER more connections and counts how
many the new worker took. Prints the busiest worker over the mean, and the new worker's
share over the mean after the AFTER connections.

    .venv/bin/python benchmarks/worker_balance.py --workers 4 --conns 1000 --after 200
"""
import argparse
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clusterws_gevent.testing import ServerProcess, free_port  # noqa: E402
from wsclient import WSClient  # noqa: E402

MODES = ("shared-socket", "reuseport", "least-connections")


def open_clients(port, count):
    clients = []
    for _ in range(count):
        client = WSClient(port)
        client.recv_json()
        clients.append(client)
    return clients


def counts_by_worker(clients):
    counts = {}
    for client in clients:
        client.emit("whoami")
        pid = client.recv_event("whoami")
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def run(mode, workers, conns, after):
    port = free_port()
    flags = ["apps.basic:worker", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--balance", mode, "--restart-on-fail", "--no-auto-ping"]
    log = Path(tempfile.gettempdir()) / f"balance-{mode}-{port}.log"
    clients = []
    with ServerProcess(flags, str(log), cwd=str(ROOT / "tests"), ready_count=workers, port=port) as server:
        try:
            clients = open_clients(port, conns)
            counts = counts_by_worker(clients)
            mean = conns / workers
            busiest = max(counts.values()) / mean
            victim = max(counts, key=counts.get)
            os.kill(victim, signal.SIGKILL)
            server.wait_for_log("(restarted)", timeout=15)
            new_pid = int(re.search(r">>> Worker: \d+, PID: (\d+) \(restarted\)", server.log()).group(1))
            fresh = open_clients(port, after)
            clients += fresh
            took = counts_by_worker(fresh).get(new_pid, 0)
            mean_after = (conns - counts[victim] + after) / workers
        finally:
            for client in clients:
                client.close()
    return sorted(counts.values()), busiest, took, took / mean_after


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--after", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    print(f"{args.conns} connections one after another over {args.workers} workers, then one worker killed "
          f"and {args.after} more ({args.rounds} rounds, medians)")
    for mode in MODES:
        results = [run(mode, args.workers, args.conns, args.after) for _ in range(args.rounds)]
        busiest = statistics.median(r[1] for r in results)
        share = statistics.median(r[3] for r in results)
        print(f"{mode:18} split {results[0][0]} busiest {busiest:.2f}x the mean (rounds: "
              f"{', '.join(f'{r[1]:.2f}' for r in results)}); the replacement took "
              f"{statistics.median(r[2] for r in results):.0f} of the next {args.after}: {share:.2f}x the mean")


if __name__ == "__main__":
    main()
