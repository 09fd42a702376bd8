"""Map-to-map fitting (VESPER's density vectors, uniform SO(3) search, refinement): a map or a
model placed into another map. Not particle alignment (that is inference on images)."""

from cryomath.fitting.align import MapFit, align_maps
from cryomath.fitting.hand import HandCheck, HandedFit, check_hand, fit_both_hands, flip_hand
from cryomath.fitting.preprocess import (
    automatic_threshold,
    coarse_grid,
    density_vectors,
    fill_constant_background,
    threshold_for_mass,
    threshold_for_volume,
)
from cryomath.fitting.refine import refine_fits
from cryomath.fitting.search import global_search, rotate_field

__all__ = [
    "HandCheck",
    "HandedFit",
    "MapFit",
    "align_maps",
    "automatic_threshold",
    "check_hand",
    "coarse_grid",
    "density_vectors",
    "fill_constant_background",
    "fit_both_hands",
    "flip_hand",
    "global_search",
    "refine_fits",
    "rotate_field",
    "threshold_for_mass",
    "threshold_for_volume",
]
