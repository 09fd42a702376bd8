#!/usr/bin/env bash
# Free the two cores of the runs bench/long_runs.sh keeps going in OUT for another job (a timing,
# the test suite): every process of the queue is stopped (SIGSTOP), COMMAND runs, they go on
# (SIGCONT, also when COMMAND fails or is interrupted). The pause is appended to OUT/pauses.json
# and to each RELION folder's pauses.json, which bench/refine.py subtracts from RELION's seconds.
# cryoDRGN's own epoch times ("Finished in") still count it.
#     bash bench/pause.sh [OUT] COMMAND [ARGS...]     (OUT: default /tmp/dev/long)
set -euo pipefail
out=/tmp/dev/long
if [ $# -gt 1 ] && [ -d "$1" ]; then
    [ -e "$1/queue.sid" ] || { echo "pause.sh: $1 holds no queue (no queue.sid)" >&2; exit 2; }
    out=$1; shift
fi
[ $# -gt 0 ] || { echo "usage: bash bench/pause.sh [OUT] COMMAND [ARGS...]" >&2; exit 2; }
[ -e "$out/queue.sid" ] || exec "$@"  # no queue was ever started here: nothing to pause
# the queue's session and every process below it (RELION's mpirun runs in a session of its own)
pids=$(pgrep -s "$(cat "$out/queue.sid")" -d ' ' || true)
next=$pids
while [ -n "$next" ]; do
    next=$(for p in $next; do pgrep -P "$p" -d ' ' || true; done | xargs)
    pids="$pids $next"
done
if [ -z "${pids// /}" ]; then exec "$@"; fi  # nothing running: nothing to pause
start=$(date +%s.%N)
resume() {
    kill -CONT $pids 2>/dev/null || true
    local end
    end=$(date +%s.%N)
    for folder in "$out" "$out"/*/relion; do
        [ -d "$folder" ] || continue
        python3 - "$folder/pauses.json" "$start" "$end" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
pauses = json.loads(path.read_text()) if path.exists() else []
path.write_text(json.dumps(pauses + [[float(sys.argv[2]), float(sys.argv[3])]]))
PY
    done
}
trap resume EXIT
kill -STOP $pids
"$@"
