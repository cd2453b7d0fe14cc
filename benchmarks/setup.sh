#!/usr/bin/env bash
# Prepare the benchmarks: copy the shared load generator and peers (../shared/bench,
# read-only) to benchmarks/.bench and install what they need (npm ci, a venv with the
# peers' Python packages, redis-server). Idempotent. Its ClusterWS-Node peers
# (cws-node-single...) run once CWS_NODE_DIR names a copy prepared by
# .bench/cws-node/rebuild-local.sh (benchmarks/README.md).
# env: SHARED_BENCH (default ../shared/bench from the repository root)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -d "$SHARED_BENCH" ] || { echo "no load generator at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
mkdir -p "$HERE/.bench"
cp -r "$SHARED_BENCH/." "$HERE/.bench/"
chmod -R u+w "$HERE/.bench"
"$HERE/.bench/setup.sh" --redis
