#!/usr/bin/env bash
# The test command: set up the environment, lint with ruff, run the test suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" test
ruff check src tests bench docs/guide
ruff format --check src tests bench docs/guide
python -m pytest "$@"
