"""Cross-server fan-out: two servers joined by a scaler hub, then by Redis, measured in one run.

Server B holds SUBS subscribers of one channel; one client on server A publishes MSGS
messages (at most WINDOW not yet delivered to every subscriber). Prints deliveries/s for
each scaler (medians of ROUNDS interleaved rounds) and the hub/Redis ratio. The load
generator is our Python client (tests/), the same for both scalers; it starts its own
redis-server on a free port and stops everything it starts.

    .venv/bin/python benchmarks/cross_server.py --subs 200 --msgs 5000
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import gevent  # noqa: E402
from helpers import RedisServer  # noqa: E402

from clusterws_gevent.client import Client  # noqa: E402
from clusterws_gevent.testing import ServerProcess, free_port, wait_until  # noqa: E402

KEY = "benchmark"


def start_servers(scaler, workdir, redis_url=None):
    hub_port = free_port()
    servers = []
    for i in range(2):
        port = free_port()
        flags = ["apps.pubsub:worker", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                 "--no-auto-ping"]
        if scaler == "redis":
            flags += ["--scaler", "redis", "--redis-url", redis_url]
        else:
            flags += ["--horizontal-key", KEY] + (["--master-port", str(hub_port)] if i == 0 else
                                                  ["--scalers-urls", f"ws://127.0.0.1:{hub_port}"])
        server = ServerProcess(flags, f"{workdir}/{scaler}-{i}.log", cwd=str(ROOT / "tests"), port=port,
                               ready_text=">>> Worker")
        server.start()
        server.url = f"ws://127.0.0.1:{port}/"
        servers.append(server)
    return servers


def measure(servers, subs, msgs, window):
    subscribers = [Client(servers[1].url) for _ in range(subs)]
    counts = [0]

    def count(_message):
        counts[0] += 1

    try:
        for client in subscribers:
            client.subscribe("fan").watch(count)
        wait_until(lambda: all(c.get_channel_by_name("fan").subscribed for c in subscribers), 30)
        with Client(servers[0].url) as publisher:
            channel = publisher.subscribe("fan")
            wait_until(lambda: channel.subscribed, 10)
            wait_until(lambda: _crosses(channel, counts, subs), 30, interval=0.05, message="servers linked")
            counts[0] = 0
            started = time.monotonic()
            for i in range(msgs):
                channel.publish(i)
                if i % 50 == 49:
                    wait_until(lambda i=i: counts[0] >= (i + 1 - window) * subs, 60, interval=0.001)
                    gevent.sleep(0)
            wait_until(lambda: counts[0] >= msgs * subs, 60, interval=0.001)
            return msgs * subs / (time.monotonic() - started)
    finally:
        for client in subscribers:
            client.close(timeout=1)


def _crosses(channel, counts, subs):
    before = counts[0]
    channel.publish("warm-up")
    gevent.sleep(0.2)
    return counts[0] >= before + subs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=200)
    parser.add_argument("--msgs", type=int, default=5000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {"hub": [], "redis": []}
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(workdir).start()
        try:
            for _ in range(args.rounds):
                for scaler in ("hub", "redis"):
                    servers = start_servers(scaler, workdir, redis.url)
                    try:
                        results[scaler].append(measure(servers, args.subs, args.msgs, args.window))
                    finally:
                        for server in servers:
                            server.stop()
        finally:
            redis.kill()
    print(f"cross-server fan-out, {args.subs} subscribers on server B, {args.msgs} publishes on server A "
          f"({args.rounds} rounds, medians)")
    for scaler, values in results.items():
        print(f"  {scaler:6} {statistics.median(values) / 1e3:8.1f} k deliveries/s  "
              f"(rounds: {', '.join(f'{v / 1e3:.1f}k' for v in values)})")
    print(f"  hub / redis: {statistics.median(results['hub']) / statistics.median(results['redis']):.2f}x")


if __name__ == "__main__":
    main()
