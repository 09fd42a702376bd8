#!/usr/bin/env bash
# The main job: set up the environment, then run `cryomath demo` (de novo on the bundled 6VYB
# N-domain: simulate 800 particles, ab initio, refine, post-process, align onto the truth with
# the hand checked) into cryomath-demo/ (report.md, PNG figures, maps, summary.json; rerunning
# replaces it).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" ""  # no extras: the plain install
cryomath demo --out cryomath-demo --force "$@"
