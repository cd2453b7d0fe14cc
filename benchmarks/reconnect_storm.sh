#!/usr/bin/env bash
# A reconnect storm against one worker: CONNS clients open at once (benchmarks/node/storm.js:
# no pacing, 4 processes from 127.0.0.2-5), each waits for its configuration message and
# holds on. The project (Mode.Single, --max-connections raised for it) against
# ClusterWS-Node (when CWS_NODE_DIR names a prepared copy), interleaved rounds.
# CONNS defaults to 19,900: this machine's per-process file limit is 20,000 (hard).
# usage: benchmarks/reconnect_storm.sh     env: CONNS (19900), ROUNDS (2), CWS_NODE_DIR, PYTHON
set -euo pipefail
source "$(dirname "$0")/common.sh"
CONNS="${CONNS:-19900}"
ROUNDS="${ROUNDS:-2}"
run() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >"${STORM_LOG:-/dev/null}" 2>&1 & local pid=$!
  wait_port "$name" "$port"
  sleep 0.5
  echo "$name $(timeout 300 node "$HERE/node/storm.js" "ws://127.0.0.1:$port/" "$CONNS" 4 60)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  sleep 2
}
for round in $(seq 1 "$ROUNDS"); do
  (cd "$ROOT/tests" && run project 9252 "$PYTHON" -m clusterws_gevent apps.idle:worker --mode single \
    --max-connections $((CONNS + 100)) -b 127.0.0.1:9252)
  if [ -n "${CWS_NODE_DIR:-}" ]; then
    run cws-node 9253 env PORT=9253 CWS_MODE=single CWS_ENGINE=ws "$CWS_NODE_DIR/launch.sh"
  fi
done
