#!/usr/bin/env bash
# Free the cores of a running bench/refine.py RELION run for another job: its processes are
# stopped (SIGSTOP), COMMAND runs, they continue (SIGCONT, also when COMMAND fails or is
# interrupted), and the pause is appended to FOLDER/pauses.json, which bench/refine.py
# subtracts from RELION's seconds.
#     bash bench/pause_relion.sh /tmp/dev/rel_a5000/relion COMMAND [ARGS...]
set -euo pipefail
folder=$(realpath "$1"); shift
sessions=$(pgrep -f "relion_refine_mpi .*--o $folder/" -d ' ' || true)
[ -n "$sessions" ] || { echo "no RELION run writing to $folder" >&2; exit 1; }
pids=$(for p in $sessions; do ps -o sid= -p "$p"; done | sort -u | xargs -I{} pgrep -s {} -d ' ')
start=$(date +%s.%N)
resume() {
    kill -CONT $pids 2>/dev/null || true
    python3 - "$folder/pauses.json" "$start" "$(date +%s.%N)" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
pauses = json.loads(path.read_text()) if path.exists() else []
path.write_text(json.dumps(pauses + [[float(sys.argv[2]), float(sys.argv[3])]]))
PY
}
trap resume EXIT
kill -STOP $pids
"$@"
