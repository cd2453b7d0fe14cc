"""Recovery time: how long a client that missed MISSED messages takes to get them all back
after it reconnects, per scaler, against the time the same messages take live, in one run.

For each scaler (Mode.Single, Mode.Scale with 2 workers and 2 brokers, Scaler.Redis with 2
workers), a recovering subscriber (our Python client, ``subscribe(recover=True)``) is
disconnected, another client publishes MISSED messages of ~100 bytes to the channel
(``history_size`` 2,000), and the subscriber connects again: the time from its connect()
to its ``recovered`` event, with every missed message delivered, is the recovery time.
The same client then receives MISSED live messages published back to back: the time from
the first publish to the last delivery is the live time. Medians of ROUNDS rounds; the
ratio recovery/live says what a recovery costs against simply receiving the messages.
It starts its own redis-server on a free port and stops everything it starts.

    .venv/bin/python benchmarks/recovery_time.py --missed 1000 --rounds 5
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import RedisServer  # noqa: E402

from clusterws_gevent.client import Client  # noqa: E402
from clusterws_gevent.testing import ServerProcess, free_port, wait_until  # noqa: E402

CHANNELS = json.dumps({"history_size": 2000, "history_ttl": 300})
PAD = "x" * 80


def start(scaler, workdir, redis_url):
    port = free_port()
    flags = ["apps.pubsub:worker", "--host", "127.0.0.1", "--port", str(port), "--no-auto-ping",
             "--channel-options", CHANNELS]
    if scaler == "scale":
        flags += ["--mode", "scale", "--workers", "2", "--brokers", "2",
                  "--brokers-ports", f"{free_port()},{free_port()}"]
    elif scaler == "redis":
        flags += ["--mode", "scale", "--workers", "2", "--scaler", "redis", "--redis-url", redis_url]
    else:
        flags += ["--mode", "single"]
    server = ServerProcess(flags, f"{workdir}/{scaler}.log", cwd=str(ROOT / "tests"), port=port,
                           ready_text=">>> Worker", ready_count=1 if scaler == "single" else 2)
    server.start()
    server.url = f"ws://127.0.0.1:{port}/"
    return server


def one_round(url, missed):
    got = []
    recovered = []
    subscriber = Client(url, auto_resubscribe=True)
    channel = subscriber.subscribe("feed", recover=True)
    channel.watch(got.append)
    channel.on("recovered", recovered.append)
    assert channel.wait_subscribed(10)
    with Client(url) as publisher:
        answers = []
        publisher.on("history", answers.append)
        publisher.subscribe("feed").wait_subscribed(10)
        publisher.send("publish", {"channel": "feed", "data": {"i": -1, "pad": PAD}})
        wait_until(lambda: got, 10)
        subscriber.close()
        for i in range(missed):
            publisher.send("publish", {"channel": "feed", "data": {"i": i, "pad": PAD}})
        wait_until(lambda: _published(publisher, answers, missed + 1), 30, interval=0.005)
        started = time.monotonic()
        subscriber.connect()
        wait_until(lambda: recovered, 30, interval=0.0005)
        recovery = time.monotonic() - started
        assert recovered == [True] and len(got) == missed + 1, (recovered, len(got))
        before = len(got)
        started = time.monotonic()
        for i in range(missed):
            publisher.send("publish", {"channel": "feed", "data": {"i": i, "pad": PAD}})
        wait_until(lambda: len(got) >= before + missed, 30, interval=0.0005)
        live = time.monotonic() - started
    subscriber.close()
    return recovery, live


def _published(publisher, answers, count):
    """Whether the channel's history holds ``count`` messages (the publishes went round)."""
    asked = len(answers)
    publisher.send("history", {"channel": "feed", "limit": 1})
    wait_until(lambda: len(answers) > asked, 5, interval=0.001)
    return answers[-1]["offset"] >= count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scalers", default="single,scale,redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(workdir).start()
        servers = {}
        try:
            for scaler in args.scalers.split(","):
                servers[scaler] = start(scaler, workdir, redis.url)
            results = {scaler: [] for scaler in servers}
            for _ in range(args.rounds):  # interleaved: the machine's drift hits every scaler alike
                for scaler, server in servers.items():
                    results[scaler].append(one_round(server.url, args.missed))
            for scaler, rounds in results.items():
                recovery = statistics.median(r for r, _ in rounds)
                live = statistics.median(live for _, live in rounds)
                print(json.dumps({"scaler": scaler, "missed": args.missed, "recovery_ms": round(recovery * 1000, 1),
                                  "live_ms": round(live * 1000, 1), "recovery_over_live": round(recovery / live, 2),
                                  "rounds": args.rounds}))
        finally:
            for server in servers.values():
                server.stop()
            redis.kill()


if __name__ == "__main__":
    main()
