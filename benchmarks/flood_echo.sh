#!/usr/bin/env bash
# Fairness under a flood (issue 7): echo latency of 50 well-behaved clients (the shared
# load generator's echo scenario) while one more client floods the same worker at full
# speed with ["e","nolistener",1] (tests/flood.py), against the same run without the
# flooder. Interleaved rounds; prints medians and the flooded/quiet ratios.
#
# usage: benchmarks/flood_echo.sh        (after benchmarks/setup.sh)
# env: ROUNDS (3), DURATION (10), PYTHON (python with the project, default .venv/bin/python)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
BENCH="$HERE/.bench"
export PROJECT_PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
PORT="${BENCH_PORT:-9100}"
[ -x "$BENCH/run.sh" ] || { echo "run benchmarks/setup.sh first" >&2; exit 2; }
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  echo "quiet $("$BENCH/run.sh" project-single echo --duration "$DURATION")" >>"$results"
  # the flooder waits for the server run.sh starts, and outlasts the measurement (warm-up included)
  (cd "$ROOT/tests" && WAIT=20 "$PROJECT_PYTHON" flood.py "$PORT" "$((DURATION + 8))" >/dev/null 2>&1) &
  flooder=$!
  echo "flooded $("$BENCH/run.sh" project-single echo --duration "$DURATION")" >>"$results"
  wait "$flooder" || true
done
"$PROJECT_PYTHON" - "$results" <<'PY'
import json, statistics, sys
runs = {"quiet": [], "flooded": []}
for line in open(sys.argv[1]):
    kind, _, payload = line.partition(" ")
    runs[kind].append(json.loads(payload))
def median(kind, key):
    return statistics.median(run[key] for run in runs[kind])
print(f"{'':10} {'rt/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
for kind in ("quiet", "flooded"):
    print(f"{kind:10} {median(kind, 'roundtrips_per_s'):>10.0f} {median(kind, 'lat_p50_ms'):>8.2f} "
          f"{median(kind, 'lat_p99_ms'):>8.2f} {median(kind, 'lat_max_ms'):>8.1f}")
print(f"flooded/quiet: p99 {median('flooded', 'lat_p99_ms') / median('quiet', 'lat_p99_ms'):.2f}x, "
      f"max {median('flooded', 'lat_max_ms') / median('quiet', 'lat_max_ms'):.2f}x, "
      f"round trips/s {median('flooded', 'roundtrips_per_s') / median('quiet', 'roundtrips_per_s'):.2f}x")
PY
