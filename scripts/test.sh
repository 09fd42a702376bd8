#!/usr/bin/env bash
# The test command: set up the environment, lint with ruff, run the test suite (the study
# guide included), then build the documentation site with warnings as errors.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" test,docs
ruff check src tests bench docs
ruff format --check src tests bench docs
python -m pytest "$@"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
