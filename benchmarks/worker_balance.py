"""How connections spread over the workers of Mode.Scale.

Starts the bench peer project_app.py in scale mode (or any command), opens CONNS
WebSockets one after another, asks each which worker it reached (socket ids start with
a per-process prefix) and prints the counts per worker.

    .venv/bin/python benchmarks/worker_balance.py --workers 4 --conns 400
"""
import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clusterws_gevent.testing import ServerProcess, free_port  # noqa: E402
from wsclient import WSClient  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--conns", type=int, default=400)
    args = parser.parse_args()
    port, broker = free_port(), free_port()
    flags = ["apps.basic:worker", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
             "--brokers", "1", "--brokers-ports", str(broker), "--no-auto-ping"]
    with ServerProcess(flags, str(Path("/tmp") / f"balance-{port}.log"),
                       cwd=str(ROOT / "tests"), ready_text=">>> Worker", ready_count=args.workers, port=port):
        clients, counts = [], collections.Counter()
        try:
            for _ in range(args.conns):
                client = WSClient(port)
                client.recv_json()
                clients.append(client)
            for client in clients:
                client.emit("state")
                counts[client.recv_event("state")["id"][:8]] += 1
        finally:
            for client in clients:
                client.close()
    share = sorted(counts.values())
    print(f"{args.conns} connections over {args.workers} workers: {share} "
          f"(spread {100 * (share[-1] - share[0]) / (args.conns / args.workers):.0f}% of the mean)")


if __name__ == "__main__":
    main()
