#!/usr/bin/env bash
# Run the Autobahn fuzzingclient (301 cases, sections 1-10) against examples/echo_server.py
# on each engine, and fail unless the results meet our bar:
#   builtin:          0 FAILED, 0 NON-STRICT, every close clean with the right code
#   gevent-websocket: 0 FAILED, <= 2 NON-STRICT, every close clean
# Env: PYTHON (default: python3), OUTDIR (default: a temp dir), ENGINES (default: both).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"
OUTDIR="${OUTDIR:-$(mktemp -d)}"
ENGINES="${ENGINES:-builtin gevent-websocket}"
status=0
for engine in $ENGINES; do
  port=$("$PYTHON" -c 'from clusterws_gevent.testing import free_port; print(free_port())')
  "$PYTHON" "$ROOT/examples/echo_server.py" --port "$port" --engine "$engine" >"$OUTDIR/server-$engine.log" 2>&1 &
  pid=$!
  OUTDIR="$OUTDIR/$engine" AGENT="$engine" TIMEOUT=300 "$HERE/run.sh" "ws://127.0.0.1:$port/"
  rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ "$rc" != 0 ]; then echo "check.sh: $engine: run.sh exited $rc" >&2; status=1; continue; fi
  max_nonstrict=0; [ "$engine" = gevent-websocket ] && max_nonstrict=2
  "$PYTHON" - "$OUTDIR/$engine" "$engine" "$max_nonstrict" <<'PY' || status=1
import json, sys
folder, agent, max_nonstrict = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = json.load(open(folder + "/index.json"))[agent]
behaviors = [c["behavior"] for c in cases.values()]
unclean = {k: c["behaviorClose"] for k, c in cases.items() if c["behaviorClose"] not in ("OK", "INFORMATIONAL")}
nine = sum(c["duration"] for k, c in cases.items() if k.startswith("9.")) / 1000
print(f"check.sh: {agent}: {len(cases)} cases, FAILED={behaviors.count('FAILED')} "
      f"NON-STRICT={behaviors.count('NON-STRICT')} unclean closes={len(unclean)} 9.*={nine:.1f}s")
ok = behaviors.count("FAILED") == 0 and behaviors.count("NON-STRICT") <= max_nonstrict and not unclean
sys.exit(0 if ok and len(cases) == 301 else 1)
PY
done
exit $status
