"""Atomic models to density maps and images (Peng et al. 1996 electron scattering factors)."""

from cryomath.atoms.model import Atoms, read_atoms
from cryomath.atoms.render import map_from_model, project_atoms, render_potential
from cryomath.atoms.scattering import molmap_sigma_angstrom, peng_coefficients

__all__ = [
    "Atoms",
    "map_from_model",
    "molmap_sigma_angstrom",
    "peng_coefficients",
    "project_atoms",
    "read_atoms",
    "render_potential",
]
