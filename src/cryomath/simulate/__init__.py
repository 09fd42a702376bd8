"""Image formation and simulated datasets with ground truth."""

from cryomath.simulate.dataset import SimulationSettings, simulate_dataset
from cryomath.simulate.forward import form_images
from cryomath.simulate.poses import DISTRIBUTIONS, projection_directions, sample_poses

__all__ = [
    "DISTRIBUTIONS",
    "SimulationSettings",
    "form_images",
    "projection_directions",
    "sample_poses",
    "simulate_dataset",
]
