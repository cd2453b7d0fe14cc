#!/usr/bin/env bash
# Prepare the benchmarks: copy the shared load generator and peers (../shared/bench,
# read-only) to benchmarks/.bench and install what they need (npm ci, a venv with the
# peers' Python packages, redis-server). Idempotent.
# env: SHARED_BENCH (default ../shared/bench from the repository root)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -d "$SHARED_BENCH" ] || { echo "no load generator at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
mkdir -p "$HERE/.bench"
cp -r "$SHARED_BENCH/." "$HERE/.bench/"
"$HERE/.bench/setup.sh" --redis
