#!/usr/bin/env bash
# The GPU check: one script for a GPU machine whose python3 has a CUDA torch, numpy, scipy,
# pandas, typer, rich, matplotlib and pytest but no package registry, and no ../shared beside
# the checkout.
#
#   bash bench/gpu-check.sh --download   # here (registry reachable): the other wheels into
#                                        # bench/wheels/ and the few data files the checks read
#                                        # into bench/gpu-data/ (both ignored by git; carry them)
#   bash bench/gpu-check.sh              # there: install the wheels (into /tmp, nothing of the
#                                        # machine's own replaced), run the tests marked cuda,
#                                        # bench/device.py and bench/estep.py on cuda, and time
#                                        # the de novo demo at 2,000 particles on cuda
#
# Ends within 8 minutes (each step has its own time limit). Exit status: that of the tests.
# With $OUT set (the device tool), the whole log is also written to $OUT/gpu-check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/wheels
CARRIED_DATA=bench/gpu-data
PACKAGES=(mrcfile starfile gemmi hypothesis attrs sortedcontainers)
PY=${PYTHON:-python3}

if [ "${1:-}" = "--download" ]; then
    version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    for v in 3.12 "$version"; do
        "$PY" -m pip download -q --only-binary=:all: --python-version "$v" --no-deps \
            -d "$WHEELS" "${PACKAGES[@]}"
    done
    shared=../shared/data
    for f in relion313_reference/proj_ctf_24.star relion313_reference/proj_ctf_24.mrcs \
             map_model/5me2.pdb map_model/1uao.pdb; do
        mkdir -p "$CARRIED_DATA/$(dirname "$f")" && cp "$shared/$f" "$CARRIED_DATA/$f"
    done
    du -sh "$WHEELS" "$CARRIED_DATA"
    exit 0
fi

if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu-check.log") 2>&1; fi
echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
          "available", torch.cuda.is_available())'
echo "== install (no registry: the carried wheels into /tmp, cryomath from src)"
SITE=/tmp/cryomath-site
timeout 60 "$PY" -m pip install -q --no-index --no-deps --target "$SITE" \
    --find-links "$WHEELS" "${PACKAGES[@]}"
export PYTHONPATH="$PWD/src:$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
if [ ! -d ../shared/data ]; then export CRYOMATH_SHARED_DATA="$PWD/$CARRIED_DATA"; fi
echo "== tests marked cuda"
CRYOMATH_DEBUG=1 timeout 200 "$PY" -m pytest -m cuda -rA --durations=0 -p no:cacheprovider tests/test_cuda.py
status=$?
echo "== bench/device.py --device cuda"
timeout 60 "$PY" bench/device.py --device cuda --repeat 3 || echo "(device benchmark failed)"
echo "== bench/estep.py --device cuda (E-step scores against the GPU's matmul rate)"
timeout 30 "$PY" bench/estep.py --device cuda --images 1024 || echo "(E-step benchmark failed)"
echo "== the de novo demo on cuda at 2,000 particles, SNR 0.1 (bench/RESULTS.md: 237 s on 2 cores)"
start=$(date +%s)
timeout 120 "$PY" -c 'from cryomath.cli import main; raise SystemExit(main(["demo", "--n", "2000",
    "--snr", "0.1", "--device", "cuda", "--out", "/tmp/demo2000", "--json"]))' \
    || echo "(demo at 2,000 particles failed or ran past 120 s)"
echo "demo at 2,000 particles: $(($(date +%s) - start)) s"
exit $status
