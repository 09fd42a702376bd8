"""Simulated particle datasets with ground truth: the truth (poses, origins, CTFs, halves) and
the images, from ``imaging``'s forward model with per-particle noise streams. Writing them as
stacks, STAR and ``.cs`` files is ``pipelines.simulate_dataset``."""

from cryomath.simulate.poses import DISTRIBUTIONS, sample_poses
from cryomath.simulate.truth import (
    SimulationSettings,
    ground_truth,
    particle_generators,
    simulate_images,
)

__all__ = [
    "DISTRIBUTIONS",
    "SimulationSettings",
    "ground_truth",
    "particle_generators",
    "sample_poses",
    "simulate_images",
]
