#!/usr/bin/env bash
# 1 MiB echo round trip, timed by a Node.js `ws` client, against the project's raw echo
# server (examples/echo_server.py, each engine) and a Node.js `ws` echo server, measured
# in the same run, interleaved (A B C A B C ...). Prints the medians and the ratio to Node.
#
# usage: benchmarks/echo_1mib.sh            env: PASSES (3), ROUNDS per pass (15), SIZE (1048576),
#        PYTHON (python with the project), BENCH_DIR (default benchmarks/.bench, made by benchmarks/setup.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh"
PASSES="${PASSES:-3}"; ROUNDS="${ROUNDS:-15}"; SIZE="${SIZE:-1048576}"
OUT="$(mktemp)"; PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -f "$OUT"; }
trap cleanup EXIT
start() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 & PIDS+=($!)
  wait_port "$name" "$port"
}
start builtin 9301 "$PYTHON" "$ROOT/examples/echo_server.py" --port 9301
start gevent-websocket 9302 "$PYTHON" "$ROOT/examples/echo_server.py" --port 9302 --engine gevent-websocket
start node-ws 9303 node "$HERE/node/echo_server.js" 9303
for pass in $(seq 1 "$PASSES"); do
  for target in "builtin 9301" "gevent-websocket 9302" "node-ws 9303"; do
    set -- $target
    rounds=$ROUNDS; [ "$1" = gevent-websocket ] && rounds=5  # 0.3-0.6 s per round trip
    node "$HERE/node/echo_client.js" "ws://127.0.0.1:$2/" "$SIZE" "$rounds" | sed "s/^{/{\"server\":\"$1\",/" >>"$OUT"
  done
done
"$PYTHON" - "$OUT" "$SIZE" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
medians = {s: statistics.median(r["median_ms"] for r in rows if r["server"] == s)
           for s in dict.fromkeys(r["server"] for r in rows)}
print(f"{int(sys.argv[2]) // 1024} KiB text echo round trip, Node.js ws client, median of per-pass medians:")
print("| server | ms | ratio to Node.js ws |\n|---|---|---|")
for server, ms in medians.items():
    print(f"| {server} | {ms:.1f} | {ms / medians['node-ws']:.2f}x |")
PY
