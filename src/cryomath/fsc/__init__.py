"""Resolution: FSC/FRC, criteria, masks (automatic, phase-randomisation correction), and
post-processing (FSC weighting, Guinier/B-factor, sharpening, low-pass)."""

from cryomath.fsc.curves import FSCCurve, fourier_ring_correlation, fourier_shell_correlation
from cryomath.fsc.local import local_resolution
from cryomath.fsc.masks import auto_mask, corrected_fsc, randomize_phases
from cryomath.fsc.postprocess import (
    apply_bfactor,
    fit_bfactor,
    fsc_weighting,
    guinier,
    low_pass,
    weight_by_shell,
)
from cryomath.fsc.resolution import (
    crossing_frequency,
    half_bit_threshold,
    resolution_angstrom,
    three_sigma_threshold,
)
from cryomath.fsc.streamed import fourier_shell_correlation_streamed

__all__ = [
    "FSCCurve",
    "apply_bfactor",
    "auto_mask",
    "corrected_fsc",
    "crossing_frequency",
    "fit_bfactor",
    "fourier_ring_correlation",
    "fourier_shell_correlation",
    "fourier_shell_correlation_streamed",
    "fsc_weighting",
    "guinier",
    "half_bit_threshold",
    "local_resolution",
    "low_pass",
    "randomize_phases",
    "resolution_angstrom",
    "three_sigma_threshold",
    "weight_by_shell",
]
