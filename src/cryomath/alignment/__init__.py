"""Map-to-map alignment (VESPER's density vectors, uniform SO(3) search, refinement)."""

from cryomath.alignment.align import align_maps
from cryomath.alignment.files import fit_rows, read_fit_input, read_fit_pair, search_maps
from cryomath.alignment.preprocess import (
    automatic_threshold,
    coarse_grid,
    density_vectors,
    fill_constant_background,
    threshold_for_mass,
    threshold_for_volume,
)
from cryomath.alignment.refine import refine_fits
from cryomath.alignment.search import global_search, rotate_field

__all__ = [
    "align_maps",
    "automatic_threshold",
    "coarse_grid",
    "density_vectors",
    "fill_constant_background",
    "fit_rows",
    "global_search",
    "read_fit_input",
    "read_fit_pair",
    "refine_fits",
    "rotate_field",
    "search_maps",
    "threshold_for_mass",
    "threshold_for_volume",
]
