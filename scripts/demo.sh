#!/usr/bin/env bash
# The main job: set up the environment, then describe the map bundled with cryomath.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" plot
cryomath info --bundled
