# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse the virtual environment
# (CRYOMATH_VENV, default .venv), install torch==2.13.0 when no torch is present (a plain
# `torch` would pull several GB of CUDA packages), then install cryomath with the given extras
# (none: the plain install, which runs every command).
# The install is skipped when pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${CRYOMATH_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --disable-pip-version-check -q "torch==2.13.0"
fi
EXTRAS="${1:-}"
STAMP="$VENV/.cryomath-installed-${EXTRAS:-plain}"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    "$PY" -m pip install --disable-pip-version-check -q -e ".${EXTRAS:+[$EXTRAS]}"
    touch "$STAMP"
fi
export PATH="$PWD/$VENV/bin:$PATH"
