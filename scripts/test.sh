#!/usr/bin/env bash
# The test command: set up the environment, lint with ruff, run the test suite (the study
# guide included) on two worker processes of one thread each (pytest-xdist), then build the
# documentation site with warnings as errors.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" test,docs
ruff check src tests bench docs
ruff format --check src tests bench docs
OMP_NUM_THREADS=1 python -m pytest -n 2 "$@"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
