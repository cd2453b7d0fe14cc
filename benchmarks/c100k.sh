#!/usr/bin/env bash
# 100,000 subscribed sockets on one machine: Mode.Scale with WORKERS workers (the per-process
# file limit here is 20,000), the load generator benchmarks/node/c100k.js in 8 processes from
# 127.0.0.2-9, every socket subscribed to one channel; then one publish to it (delivery
# p50/p99/max) and 10 publishes/s for 30 s (deliveries/s, p99); server RSS per socket over
# every server process. With "node": ClusterWS-Node in Mode.Scale (CWS_NODE_DIR) instead.
# usage: benchmarks/c100k.sh [CONNS (100000)] [WORKERS (7)] [PORT (9366)] [node]
set -uo pipefail
source "$(dirname "$0")/common.sh"
CONNS=${1:-100000}; W=${2:-7}; PORT=${3:-9366}; LOG=$(mktemp); OUT=$(mktemp)
cd "$ROOT/tests"
if [ "${4:-}" = node ]; then
  (exec env PORT="$PORT" CWS_MODE=scale CWS_ENGINE=ws CWS_WORKERS="$W" CWS_BROKER_PORT=$((PORT + 1)) \
    "$CWS_NODE_DIR/launch.sh") >"$LOG" 2>&1 & spid=$!
  for _ in $(seq 150); do grep -q "Master on" "$LOG" && break; sleep 0.2; done
else
  "$PYTHON" -m clusterws_gevent apps.idle:worker --workers "$W" --max-connections 19500 -b "127.0.0.1:$PORT" \
    >"$LOG" 2>&1 & spid=$!
  for _ in $(seq 150); do [ "$(grep -c ">>> Worker" "$LOG")" -ge "$W" ] && break; sleep 0.2; done
fi
sleep 2
tree() { echo "$1"; for c in $(pgrep -P "$1"); do tree "$c"; done; }
rss() { local t=0 p; for p in $(tree "$spid"); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
before=$(rss); after=""
listen_drops() { nstat -az TcpExtListenDrops 2>/dev/null | awk '/ListenDrops/ {print $2}'; }
drops_before=$(listen_drops)
timeout 900 node "$HERE/node/c100k.js" "ws://127.0.0.1:$PORT/" "$CONNS" 8 10 30 >"$OUT" & cpid=$!
while kill -0 "$cpid" 2>/dev/null; do
  if [ -z "$after" ] && grep -q subscribed "$OUT"; then
    sleep 3; after=$(rss)
    echo "server RSS: $before KiB before, $after KiB subscribed: $(awk "BEGIN {printf \"%.2f\", ($after - $before) / $CONNS}") KiB per socket"
  fi
  sleep 1
done
tail -n 1 "$OUT"
kill "$spid"; wait "$spid" 2>/dev/null
[ -n "$drops_before" ] && echo "the kernel dropped $(( $(listen_drops) - drops_before )) connection attempts (listen queue full: TcpExtListenDrops; somaxconn $(cat /proc/sys/net/core/somaxconn))"
# what the server refused or failed (every refusal is logged with its rule), counted by kind
echo "server log, warnings and errors by kind:"
grep -E "WARNING|ERROR|error" "$LOG" | sed -E 's/[0-9]+/N/g' | cut -c1-160 | sort | uniq -c | sort -rn | head -n 15
rm -f "$LOG" "$OUT"
