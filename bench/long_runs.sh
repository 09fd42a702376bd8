#!/usr/bin/env bash
# The side-by-side runs of issues 16-18 that take hours on two cores, one after another, each
# picked up where it stopped when the queue is started again (RELION by --continue from its
# last iteration, cryoDRGN's train_vae from its last weights, a finished step not at all):
#   relion_a        bench/refine.py: RELION 3.1.3 auto-refine on 5,000 particles of (a), to
#                   convergence (issue 16 §5)
#   drgn_continuous bench/heterogeneity.py: cryoDRGN train_vae at its default width, 20 epochs,
#   drgn_discrete   on the continuous and the discrete set (issue 18 §6)
#   drgn_ai         bench/abinitio.py: cryoDRGN-AI (abinit --zdim 0) on (b), 5 epochs (issue
#                   17 §3; it cannot resume, so an interrupted run starts again)
#   relion_b        bench/refine.py: RELION 3.1.3 auto-refine on 5,000 particles of (b)
#
#     nohup setsid bash bench/long_runs.sh [OUT] > /dev/null 2>&1 &
#     bash bench/pause.sh [OUT] COMMAND [ARGS...]    # free the cores for COMMAND meanwhile
#
# OUT (default /tmp/dev/long) holds each step's folder and log, STEP.done once it finished,
# queue.log (starts and ends) and queue.sid (the session bench/pause.sh stops). A failed step
# ends the queue; its log says why.
set -uo pipefail
out=$(realpath -m "${1:-/tmp/dev/long}")
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
mkdir -p "$out"
ps -o sid= -p $$ | tr -d ' ' > "$out/queue.sid"
cd "$root"

step() {  # NAME COMMAND...: run COMMAND unless NAME is done
    local name=$1
    shift
    [ -e "$out/$name.done" ] && return 0
    echo "$(date -u +%FT%TZ) start $name: $*" >> "$out/queue.log"
    "$@" >> "$out/$name.log" 2>&1
    local status=$?
    if [ $status -ne 0 ]; then
        echo "$(date -u +%FT%TZ) failed $name (exit $status): see $out/$name.log" >> "$out/queue.log"
        exit 1
    fi
    touch "$out/$name.done"
    echo "$(date -u +%FT%TZ) done $name" >> "$out/queue.log"
}

relion() {  # DATASET: refine.py with RELION; cryomath's refinement is kept once it finished
    local folder="$out/relion_$1" reuse=()
    [ -e "$folder/cryomath/bench-seconds.json" ] && reuse=(--reuse-cryomath)
    "$py" bench/refine.py --dataset "$1" --n 5000 --mates A:C,B:D --no-oracle --relion \
        --relion-timeout 1000000 "${reuse[@]}" --out "$folder"
}

step relion_a relion a
for case in continuous discrete; do
    step "drgn_$case" "$py" bench/heterogeneity.py --particles 5000 --cases "$case" \
        --methods cryodrgn --epochs 20 --resume-cryodrgn --out "$out/heterogeneity_$case"
done
step drgn_ai "$py" bench/abinitio.py --dataset b --peers drgn_ai --drgn-epochs 5 \
    --drgn-timeout 1000000 --out "$out/abinitio"
step relion_b relion b
echo "$(date -u +%FT%TZ) all done" >> "$out/queue.log"
