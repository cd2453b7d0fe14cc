#!/usr/bin/env bash
# Side-by-side benchmarks against peers measured in the same run (interleaved rounds;
# medians; ratios to the first peer). Uses the shared load generator (benchmarks/setup.sh).
#
# usage: benchmarks/run.sh SCENARIO [extra loadgen options]
#   echo      50 clients emit/emit-back, 10 s         project-single vs ClusterWS-Node*, project-flask-single, raw-gevent
#   latency   echo p99 at a fixed rate (RATE, 25,000/s) the same peers (benchmarks/echo_latency.sh)
#   connect   5,000 connections; server RSS per conn  project-single vs ClusterWS-Node*, project-flask-single, raw-gevent
#   fanout    1,000 subscribers, 20,000 publishes     project-single vs raw-gevent, flask-sio
#   xworker   cross-worker fan-out, 2 workers         project-scale vs flask-sio-redis
#   xredis    cross-worker fan-out through Redis      project-scale-redis vs flask-sio-redis (target >= 10x)
#   xhistory  xworker with history_size 100 on every channel, against the same without (target >= 0.7x)
#   xredis-history  xredis with history_size 100, against the same without and flask-sio-redis (>= 0.5x, >= 5x)
#   recovery  time to recover 1,000 missed messages, per scaler (benchmarks/recovery_time.py)
#   xserver   cross-server fan-out, hub vs Redis      (benchmarks/cross_server.py)
#   1mib      1 MiB echo, Node.js ws client           (benchmarks/echo_1mib.sh)
# * ClusterWS 4.0.0-alpha.7 on Node.js (peer cws-node-single) runs when CWS_NODE_DIR names a
#   prepared copy of it (benchmarks/README.md); without it, the shared bench's reference
#   figures are the anchor.
# env: ROUNDS (3), PYTHON (python with the project, default .venv/bin/python), CWS_NODE_DIR, RATE
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
BENCH="$HERE/.bench"
export PROJECT_PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export ROUNDS="${ROUNDS:-3}"
[ -x "$BENCH/compare.sh" ] || { echo "run benchmarks/setup.sh first" >&2; exit 2; }
scenario="${1:-}"; shift || true
NODE_PEER=(); [ -n "${CWS_NODE_DIR:-}" ] && NODE_PEER=(cws-node-single)
case "$scenario" in
  echo)    exec "$BENCH/compare.sh" echo project-single "${NODE_PEER[@]}" project-flask-single raw-gevent -- --duration 10 "$@" ;;
  latency) exec "$HERE/echo_latency.sh" "${RATE:-25000}" ;;
  connect) exec "$BENCH/compare.sh" connect project-single "${NODE_PEER[@]}" project-flask-single raw-gevent -- "$@" ;;
  fanout)  exec "$BENCH/compare.sh" fanout project-single raw-gevent flask-sio -- "$@" ;;
  xworker) exec "$BENCH/compare.sh" xworker project-scale flask-sio-redis -- "$@" ;;
  xredis)  exec "$BENCH/compare.sh" xworker project-scale-redis flask-sio-redis -- "$@" ;;
  xhistory) exec "$BENCH/compare.sh" xworker project-scale project-scale-history -- "$@" ;;
  xredis-history) exec "$BENCH/compare.sh" xworker project-scale-redis project-scale-redis-history flask-sio-redis -- "$@" ;;
  recovery) exec "$PROJECT_PYTHON" "$HERE/recovery_time.py" "$@" ;;
  xserver) exec "$PROJECT_PYTHON" "$HERE/cross_server.py" "$@" ;;
  1mib)    exec "$HERE/echo_1mib.sh" ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
