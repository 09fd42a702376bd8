#!/usr/bin/env bash
# The main job: set up the environment, then run `cryomath demo` (simulate 10,000 particles of
# the bundled 6VYB N-domain, reconstruct half maps, FSC, align back to the truth) into
# cryomath-demo/ (report.md, PNG figures, maps, summary.json; rerunning replaces it).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" ""  # no extras: the plain install
cryomath demo --out cryomath-demo --force "$@"
