"""Map-to-map alignment (VESPER's density vectors, uniform SO(3) search, refinement)."""

from cryomath.alignment.align import align_maps
from cryomath.alignment.preprocess import (
    automatic_threshold,
    coarse_grid,
    density_vectors,
    threshold_for_mass,
)
from cryomath.alignment.refine import refine_fits
from cryomath.alignment.search import global_search, rotate_field

__all__ = [
    "align_maps",
    "automatic_threshold",
    "coarse_grid",
    "density_vectors",
    "global_search",
    "refine_fits",
    "rotate_field",
    "threshold_for_mass",
]
