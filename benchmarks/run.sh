#!/usr/bin/env bash
# Side-by-side benchmarks against peers measured in the same run (interleaved rounds;
# medians; ratios to the first peer). Uses the shared load generator (benchmarks/setup.sh).
#
# usage: benchmarks/run.sh SCENARIO [extra loadgen options]
#   echo      50 clients emit/emit-back, 10 s         project-single vs raw-gevent (target >= 2x)
#   connect   5,000 connections; server RSS per conn  project-single vs raw-gevent (target <= 16 KiB)
#   fanout    1,000 subscribers, 20,000 publishes     project-single vs raw-gevent, flask-sio
#   xworker   cross-worker fan-out, 2 workers         project-scale vs flask-sio-redis
#   xredis    cross-worker fan-out through Redis      project-scale-redis vs flask-sio-redis (target >= 10x)
#   xserver   cross-server fan-out, hub vs Redis      (benchmarks/cross_server.py)
#   1mib      1 MiB echo, Node.js ws client           (benchmarks/echo_1mib.sh)
# env: ROUNDS (3), PYTHON (python with the project, default .venv/bin/python)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
BENCH="$HERE/.bench"
export PROJECT_PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export ROUNDS="${ROUNDS:-3}"
[ -x "$BENCH/compare.sh" ] || { echo "run benchmarks/setup.sh first" >&2; exit 2; }
scenario="${1:-}"; shift || true
case "$scenario" in
  echo)    exec "$BENCH/compare.sh" echo project-single raw-gevent -- --duration 10 "$@" ;;
  connect) exec "$BENCH/compare.sh" connect project-single raw-gevent -- "$@" ;;
  fanout)  exec "$BENCH/compare.sh" fanout project-single raw-gevent flask-sio -- "$@" ;;
  xworker) exec "$BENCH/compare.sh" xworker project-scale flask-sio-redis -- "$@" ;;
  xredis)  exec "$BENCH/compare.sh" xworker project-scale-redis flask-sio-redis -- "$@" ;;
  xserver) exec "$PROJECT_PYTHON" "$HERE/cross_server.py" "$@" ;;
  1mib)    exec "$HERE/echo_1mib.sh" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
