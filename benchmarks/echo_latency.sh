#!/usr/bin/env bash
# Echo latency at a fixed rate: 50 clients emit RATE round trips per second in all (open
# loop, benchmarks/node/echo_rate.js), against the project (bench peer project_app.py,
# Mode.Single), ClusterWS on Node.js (when CWS_NODE_DIR is set: benchmarks/README.md) and
# bare gevent-websocket, interleaved, ROUNDS times; prints each run and the medians.
# usage: benchmarks/echo_latency.sh [RATE]   (default 25000: about half of the peak of the
#        project and of ClusterWS-Node in `benchmarks/run.sh echo` on 2 cores)
# env: ROUNDS (3), SECONDS_PER_RUN (10), PYTHON, BENCH_DIR (benchmarks/.bench), CWS_NODE_DIR
set -euo pipefail
source "$(dirname "$0")/common.sh"
RATE="${1:-25000}"
ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

run() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 & local pid=$!
  wait_port "$name" "$port"
  local line
  line=$(node "$HERE/node/echo_rate.js" "ws://127.0.0.1:$port/" "$RATE" "$SECONDS_PER_RUN" 50 "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$name $line" | tee -a "$OUT" >&2
}

for _ in $(seq 1 "$ROUNDS"); do
  run project-single 9320 "$PYTHON" "$BENCH_DIR/peers/project_app.py" 9320 single
  if [ -n "${CWS_NODE_DIR:-}" ]; then
    run cws-node-single 9321 env PORT=9321 CWS_MODE=single CWS_ENGINE=ws "$CWS_NODE_DIR/launch.sh"
  fi
  run raw-gevent 9322 "$BENCH_DIR/.venv/bin/python" "$BENCH_DIR/peers/raw_gevent.py" --port 9322
  sleep 1
done

python3 - "$OUT" "$RATE" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, _, rest = line.partition(" ")
    runs.setdefault(name, []).append(json.loads(rest))
print(f"\n### echo latency at {sys.argv[2]} round trips/s (50 clients, open loop; medians of runs)\n")
print("| peer | runs | answered/s | lost | p50 ms | p99 ms | max ms | srv CPU us/rt |")
print("|---|---|---|---|---|---|---|---|")
for name, rs in runs.items():
    med = lambda key: statistics.median(r[key] for r in rs if r[key] is not None)
    print(f"| {name} | {len(rs)} | {med('rate_answered'):,.0f} | {med('lost'):,.0f} | {med('p50_ms'):.3f} | "
          f"{med('p99_ms'):.2f} | {med('max_ms'):.1f} | {med('server_cpu_us_per_rt'):.1f} |")
PY
