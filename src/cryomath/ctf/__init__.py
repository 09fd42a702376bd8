"""The contrast transfer function: parameters, values on Fourier grids, envelopes, and
CTF correction of images; delocalisation (the box a resolution needs); radiation damage (the
exposure filter and dose weighting); the Ewald sphere's two single side-bands."""

from cryomath.ctf.aliasing import ctf_aliasing_frequency
from cryomath.ctf.ctf import CTF, compute_ctf
from cryomath.ctf.damage import (
    critical_exposure,
    dose_weighted_sum,
    dose_weights,
    exposure_filter,
    frame_exposures,
)
from cryomath.ctf.delocalisation import (
    box_size_for_resolution,
    delocalisation_bound_angstrom,
    delocalisation_radius_angstrom,
)
from cryomath.ctf.ewald import ewald_curvature, single_sideband_ctf
from cryomath.ctf.filters import phase_flip, wiener_filter
from cryomath.ctf.wavelength import electron_wavelength_angstrom

__all__ = [
    "CTF",
    "box_size_for_resolution",
    "compute_ctf",
    "critical_exposure",
    "ctf_aliasing_frequency",
    "delocalisation_bound_angstrom",
    "delocalisation_radius_angstrom",
    "dose_weighted_sum",
    "dose_weights",
    "electron_wavelength_angstrom",
    "ewald_curvature",
    "exposure_filter",
    "frame_exposures",
    "phase_flip",
    "single_sideband_ctf",
    "wiener_filter",
]
