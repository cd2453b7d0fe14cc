#!/usr/bin/env bash
# permessage-deflate on vs off, same run, interleaved rounds (benchmarks/node/compression.js,
# benchmarks/compression_app.py: Mode.Single, one server with websocket_options.compression on
# and one with it off):
#   fan-out to 1,000 subscribers of the bench's 64-byte JSON and of a 2 KiB chat-like JSON
#     (words drawn at random from 150): deliveries/s (median), bytes on the wire per delivery,
#     and the server's CPU per million deliveries (connections' set-up included);
#   echo (50 clients, 5 s) of 64 B and 2 KiB: round trips/s;
#   RSS per idle subscribed connection (5,000), compressed or not.
# usage: benchmarks/compression.sh     env: ROUNDS (3), PYTHON, BENCH_DIR (benchmarks/.bench)
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-3}"
LOAD="$HERE/node/compression.js"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
"$PYTHON" "$HERE/compression_app.py" 9521 --compression >/dev/null 2>&1 & ON=$!
"$PYTHON" "$HERE/compression_app.py" 9522 >/dev/null 2>&1 & OFF=$!
trap 'kill $ON $OFF 2>/dev/null || true' EXIT
wait_port on 9521; wait_port off 9522
results=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for size in 64 2048; do
    msgs=$([ "$size" = 64 ] && echo 20000 || echo 4000)
    for mode in on off; do
      pid=$ON port=9521 deflate=1; [ "$mode" = off ] && { pid=$OFF port=9522 deflate=0; }
      before=$(cpu "$pid")
      line=$(timeout 180 node "$LOAD" fanout "ws://127.0.0.1:$port/" 1000 "$msgs" "$size" "$deflate")
      ticks=$(( $(cpu "$pid") - before ))
      echo "fanout $size $mode $(echo "$line" | "$PYTHON" -c "import json,sys; r=json.load(sys.stdin); \
print(r['deliveries_per_s'] if r['complete'] else 0, r['wire_bytes_per_delivery'], \
round($ticks / 100 / (r['deliveries_per_s'] * r['seconds'] / 1e6 or 1), 3))")" >>"$results"
      sleep 1
    done
    for mode in on off; do
      port=9521 deflate=1; [ "$mode" = off ] && { port=9522 deflate=0; }
      line=$(timeout 60 node "$LOAD" echo "ws://127.0.0.1:$port/" 50 5 "$size" "$deflate")
      echo "echo $size $mode $(echo "$line" | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['round_trips_per_s'])")" \
        >>"$results"
      sleep 1
    done
  done
done
idle() { # mode: RSS per idle subscribed connection, in a fresh server
  local port=9523 flag=(); [ "$1" = on ] && flag=(--compression)
  "$PYTHON" "$HERE/compression_app.py" $port "${flag[@]}" >/dev/null 2>&1 & local pid=$!
  wait_port idle $port; sleep 0.5
  local before; before=$(rss $pid)
  coproc CLIENT { node "$LOAD" idle "ws://127.0.0.1:$port/" 5000 "$([ "$1" = on ] && echo 1 || echo 0)"; }
  read -r -t 120 _ <&"${CLIENT[0]}"
  sleep 2; local after; after=$(rss $pid)
  exec {CLIENT[1]}>&-; wait "$CLIENT_PID" 2>/dev/null || true
  kill $pid; wait $pid 2>/dev/null || true
  echo "idle 0 $1 $(awk "BEGIN {printf \"%.2f\", ($after - $before) / 5000}")" >>"$results"
}
idle on; idle off
"$PYTHON" - "$results" "$ROUNDS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def median(kind, size, mode, column):
    values = [float(r[3 + column]) for r in rows if r[:3] == [kind, size, mode]]
    return statistics.median(values) if values else float("nan")
print(f"rounds: {sys.argv[2]}, medians; ratio = on / off\n")
print("| fan-out to 1,000 | deliveries/s on | off | ratio | wire bytes/delivery on | off | server CPU s per M deliveries on | off |")
print("|---|---|---|---|---|---|---|---|")
for size, name in (("64", "64-byte JSON"), ("2048", "2 KiB chat-like JSON")):
    on, off = median("fanout", size, "on", 0), median("fanout", size, "off", 0)
    print(f"| {name} | {on:,.0f} | {off:,.0f} | {on / off:.2f}x | {median('fanout', size, 'on', 1):.1f} | "
          f"{median('fanout', size, 'off', 1):.1f} | {median('fanout', size, 'on', 2):.2f} | {median('fanout', size, 'off', 2):.2f} |")
print("\n| echo, 50 clients | round trips/s on | off | ratio |\n|---|---|---|---|")
for size, name in (("64", "64-byte JSON"), ("2048", "2 KiB chat-like JSON")):
    on, off = median("echo", size, "on", 0), median("echo", size, "off", 0)
    print(f"| {name} | {on:,.0f} | {off:,.0f} | {on / off:.2f}x |")
print(f"\nRSS per idle subscribed connection (5,000): compressed {median('idle', '0', 'on', 0):.2f} KiB, "
      f"uncompressed {median('idle', '0', 'off', 0):.2f} KiB")
PY
rm -f "$results"
