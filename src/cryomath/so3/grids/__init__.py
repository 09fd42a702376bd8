"""Orientation grids on SO(3) and S^2, and measures of their uniformity."""

from cryomath.so3.grids.healpix import healpix_nest_centres, healpix_pixel_centres
from cryomath.so3.grids.rotations import (
    even_angles,
    healpix_directions,
    healpix_grid,
    healpix_poses,
    healpix_poses_at,
    hopf_grid,
    local_grid,
    super_fibonacci,
)
from cryomath.so3.grids.uniformity import covering_radius, minimum_separation

__all__ = [
    "covering_radius",
    "even_angles",
    "healpix_directions",
    "healpix_grid",
    "healpix_nest_centres",
    "healpix_pixel_centres",
    "healpix_poses",
    "healpix_poses_at",
    "hopf_grid",
    "local_grid",
    "minimum_separation",
    "super_fibonacci",
]
