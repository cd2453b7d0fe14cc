#!/usr/bin/env bash
# Run the Autobahn fuzzingclient against examples/echo_server.py on each engine, and fail
# unless the results meet our bar:
#   builtin:          517 cases (sections 1-13: 12 and 13 are permessage-deflate, which the
#                     server negotiates, --compression): 0 FAILED, 0 NON-STRICT, every close
#                     clean with the right code
#   gevent-websocket: 301 cases (sections 1-10; it does not compress): 0 FAILED,
#                     <= 2 NON-STRICT, every close clean
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
  flags=(); cases=""; expected=301
  if [ "$engine" = builtin ]; then flags=(--compression); cases='*'; expected=517; fi
  "$PYTHON" "$ROOT/examples/echo_server.py" --port "$port" --engine "$engine" "${flags[@]}" \
    >"$OUTDIR/server-$engine.log" 2>&1 &
  pid=$!
  OUTDIR="$OUTDIR/$engine" AGENT="$engine" TIMEOUT=1200 "$HERE/run.sh" "ws://127.0.0.1:$port/" "$cases"
  rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ "$rc" != 0 ]; then echo "check.sh: $engine: run.sh exited $rc" >&2; status=1; continue; fi
  max_nonstrict=0; [ "$engine" = gevent-websocket ] && max_nonstrict=2
  "$PYTHON" - "$OUTDIR/$engine" "$engine" "$max_nonstrict" "$expected" <<'PY' || status=1
import json, sys
folder, agent, max_nonstrict, expected = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cases = json.load(open(folder + "/index.json"))[agent]
behaviors = [c["behavior"] for c in cases.values()]
unclean = {k: c["behaviorClose"] for k, c in cases.items() if c["behaviorClose"] not in ("OK", "INFORMATIONAL")}
nine = sum(c["duration"] for k, c in cases.items() if k.startswith("9.")) / 1000
deflate = sum(1 for k in cases if k.split(".")[0] in ("12", "13"))
print(f"check.sh: {agent}: {len(cases)} cases ({deflate} permessage-deflate), FAILED={behaviors.count('FAILED')} "
      f"NON-STRICT={behaviors.count('NON-STRICT')} unclean closes={len(unclean)} 9.*={nine:.1f}s")
ok = behaviors.count("FAILED") == 0 and behaviors.count("NON-STRICT") <= max_nonstrict and not unclean
sys.exit(0 if ok and len(cases) == expected else 1)
PY
done
exit $status
