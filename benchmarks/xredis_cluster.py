"""Cross-worker fan-out through a Redis Cluster of 3 masters against one Redis, same run.

The shared load generator's ``xworker`` scenario (``.bench/loadgen``: SUBS subscribers and a
publisher spread over 2 workers, so every delivery crosses Redis) against
``benchmarks/redis_app.py`` joined by one ``redis-server``, then by a cluster of 3 masters
(no replicas: the same number of copies of each message), in interleaved rounds. Server CPU
includes the Redis processes. Prints the medians and the cluster / one-Redis ratio.

    .venv/bin/python benchmarks/xredis_cluster.py [--rounds 3] [loadgen options, e.g. --msgs 20000]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import RedisCluster, RedisServer  # noqa: E402

from clusterws_gevent.testing import free_port, wait_until  # noqa: E402

LOADGEN = ROOT / "benchmarks" / ".bench" / "loadgen" / "loadgen.js"


def run_round(label, redis_url, redis_pids, workdir, loadgen_args):
    port = free_port()
    log_path = Path(workdir) / f"{label}-{port}.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "redis_app.py"), str(port), "2",
                                   redis_url], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log_path.read_text().count("BENCH_READY") >= 2, 30, interval=0.1,
                   message=f"{label} ready")
        time.sleep(0.5)  # the workers' Redis links settle (the shared harness waits as long)
        pids = [server.pid, *children(server.pid), *redis_pids]
        out = subprocess.run(["node", str(LOADGEN), "xworker", "--proto", "clusterws", "--url",
                              f"ws://127.0.0.1:{port}/", "--pids", ",".join(map(str, pids)), "--label", label,
                              *loadgen_args], capture_output=True, text=True, timeout=240, check=False)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(15)


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def main():
    args = sys.argv[1:]
    rounds = 3
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    results = {"one-redis": [], "cluster-3": []}
    with tempfile.TemporaryDirectory() as workdir:
        single = RedisServer(workdir).start()
        cluster = RedisCluster(Path(workdir) / "cluster", masters=3, replicas=0).start()
        try:
            peers = {"one-redis": (single.url, [single.process.pid]),
                     "cluster-3": (cluster.url, [node.process.pid for node in cluster.nodes])}
            for r in range(rounds):
                for label, (url, pids) in peers.items():
                    result = run_round(label, url, pids, workdir, args)
                    print(f"# round {r + 1}/{rounds}: {json.dumps(result)}", file=sys.stderr)
                    results[label].append(result)
        finally:
            cluster.stop()
            single.kill()
    print("| Redis | deliveries/s | p99 ms | server CPU µs/delivery (Redis included) |")
    print("|---|---|---|---|")
    for label, runs in results.items():
        ok = [run for run in runs if "deliveries_per_s" in run]
        print(f"| {label} | {statistics.median(r['deliveries_per_s'] for r in ok) / 1e6:.2f} M | "
              f"{statistics.median(r['lat_p99_ms'] for r in ok):.1f} | "
              f"{statistics.median(r['server_cpu_us_per_delivery'] for r in ok):.3f} |")
    ratio = (statistics.median(r["deliveries_per_s"] for r in results["cluster-3"]) /
             statistics.median(r["deliveries_per_s"] for r in results["one-redis"]))
    print(f"cluster / one Redis: {ratio:.2f}x (target >= 0.8x)")


if __name__ == "__main__":
    main()
