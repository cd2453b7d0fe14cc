# Sourced by the benchmark scripts that start their own servers (echo_1mib.sh,
# echo_latency.sh, idle_subscribers.sh): where things are, the load generator's node
# modules (benchmarks/setup.sh), and waiting for a server's port.
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BENCH_DIR="${BENCH_DIR:-$HERE/.bench}"
export NODE_PATH="$BENCH_DIR/loadgen/node_modules"
[ -d "$NODE_PATH/ws" ] || { echo "no ws in $NODE_PATH: run benchmarks/setup.sh first" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true

wait_port() { # NAME PORT: until something accepts on 127.0.0.1:PORT; exits the script after 10 s
  local _
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start on port $2" >&2; exit 3
}
