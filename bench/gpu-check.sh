#!/usr/bin/env bash
# The GPU check: one script for a GPU machine whose python3 has a CUDA torch, numpy, scipy,
# pandas, typer, rich, matplotlib and pytest but no package registry.
#
#   bash bench/gpu-check.sh --download   # here (registry reachable): the other wheels into
#                                        # bench/wheels/ (ignored by git; carry it over)
#   bash bench/gpu-check.sh              # there: install them and cryomath (--no-deps), run
#                                        # the tests marked cuda, then bench/device.py --device cuda
#
# Ends within 8 minutes (each step has its own time limit). Exit status: that of the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/wheels
PACKAGES=(mrcfile starfile gemmi hypothesis attrs sortedcontainers)
PY=${PYTHON:-python3}

if [ "${1:-}" = "--download" ]; then
    version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    for v in 3.12 "$version"; do
        "$PY" -m pip download -q --only-binary=:all: --python-version "$v" --no-deps \
            -d "$WHEELS" "${PACKAGES[@]}"
    done
    ls -l "$WHEELS"
    exit 0
fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
          "available", torch.cuda.is_available())'
echo "== install (no registry: the carried wheels, cryomath without dependencies)"
timeout 120 "$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-deps "${PACKAGES[@]}"
timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
    || echo "(editable install failed: using PYTHONPATH=src)"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "== tests marked cuda"
timeout 300 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider tests/test_cuda.py
status=$?
echo "== bench/device.py --device cuda"
timeout 120 "$PY" bench/device.py --device cuda --repeat 3 || echo "(device benchmark failed)"
echo "== bench/estep.py --device cuda (E-step scores against the GPU's matmul rate)"
timeout 60 "$PY" bench/estep.py --device cuda --images 1024 || echo "(E-step benchmark failed)"
exit $status
