#!/usr/bin/env bash
# Prepare the benchmarks: copy the shared load generator and peers (../shared/bench,
# read-only) to benchmarks/.bench and install what they need (npm ci, a venv with the
# peers' Python packages, redis-server). Idempotent.
#
# The copy's run.sh gains one peer the shared bench does not have: `cws-node-single`,
# ClusterWS 4.0.0-alpha.7 on Node.js (benchmarks/node/cws_node_app.js), runnable once
# CWS_NODE_DIR names a prepared copy of the original (benchmarks/README.md).
# env: SHARED_BENCH (default ../shared/bench from the repository root)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -d "$SHARED_BENCH" ] || { echo "no load generator at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
mkdir -p "$HERE/.bench"
cp -r "$SHARED_BENCH/." "$HERE/.bench/"
chmod -R u+w "$HERE/.bench"
arm='  cws-node-single)\n    PROTO=clusterws; URL="ws://127.0.0.1:$PORT/"\n    CMD=(node "'"$HERE"'/node/cws_node_app.js" "$PORT") ;;'
grep -q 'cws-node-single)' "$HERE/.bench/run.sh" ||
  sed -i "s|^  \*) echo \"unknown peer|$arm\n&|" "$HERE/.bench/run.sh"
"$HERE/.bench/setup.sh" --redis
