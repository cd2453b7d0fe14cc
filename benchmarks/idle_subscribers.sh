#!/usr/bin/env bash
# Server RSS per idle subscribed connection: 5,000 connections, each subscribed to one of
# 100 channels, against the project (bench peer project_app.py, Mode.Single: bare, attached
# to Flask(__name__), and over TLS: benchmarks/tls_app.py) and the raw gevent-websocket peer,
# measured in the same run.
# usage: benchmarks/idle_subscribers.sh     env: CONNS (5000), PYTHON, BENCH_DIR (benchmarks/.bench)
set -euo pipefail
source "$(dirname "$0")/common.sh"
CONNS="${CONNS:-5000}"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
measure() { # name port command...
  local name=$1 port=$2 scheme=ws; shift 2
  case "$name" in *tls*) scheme=wss ;; esac
  "$@" >/dev/null 2>&1 & local pid=$!
  wait_port "$name" "$port"
  sleep 0.5; local before; before=$(rss "$pid")
  coproc CLIENT { node "$HERE/node/idle_subscribers.js" "$scheme://127.0.0.1:$port/" "$CONNS"; }
  read -r -t 120 line <&"${CLIENT[0]}"
  sleep 2; local after; after=$(rss "$pid")
  exec {CLIENT[1]}>&-; wait "$CLIENT_PID" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "| $name | $line | $before | $after | $(awk "BEGIN {printf \"%.1f\", ($after - $before) / $CONNS}") |"
}
echo "| server | subscribed | RSS before KiB | RSS after KiB | KiB per subscribed connection |"
echo "|---|---|---|---|---|"
measure project-single 9310 "$PYTHON" "$BENCH_DIR/peers/project_app.py" 9310 single
measure project-flask-single 9312 "$PYTHON" "$BENCH_DIR/peers/project_app.py" 9312 single-flask
measure project-tls-single 9313 "$PYTHON" "$HERE/tls_app.py" 9313
measure project-flask-tls-single 9314 "$PYTHON" "$HERE/tls_app.py" 9314 flask
measure raw-gevent 9311 "$BENCH_DIR/.venv/bin/python" "$BENCH_DIR/peers/raw_gevent.py" --port 9311
