"""Simulated particle datasets with ground truth (images come from ``imaging``'s forward
model)."""

from cryomath.simulate.dataset import SimulationSettings, simulate_dataset
from cryomath.simulate.poses import DISTRIBUTIONS, sample_poses

__all__ = ["DISTRIBUTIONS", "SimulationSettings", "sample_poses", "simulate_dataset"]
