"""Orchestration: work on files (particle stacks, shards, resumable runs) over the compute
packages below; the CLI and the demo call these."""

from cryomath.pipelines.projection import project_particles

__all__ = ["project_particles"]
