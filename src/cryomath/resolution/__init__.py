"""Resolution: FSC/FRC, criteria, masks (automatic, phase-randomisation correction), and
post-processing (FSC weighting, Guinier/B-factor, sharpening, low-pass)."""

from cryomath.resolution.crossing import (
    crossing_frequency,
    half_bit_threshold,
    resolution_angstrom,
    three_sigma_threshold,
)
from cryomath.resolution.curves import FSCCurve, fourier_ring_correlation, fourier_shell_correlation
from cryomath.resolution.local import local_resolution
from cryomath.resolution.masked import (
    HalfMapFSC,
    PostProcessed,
    automatic_mask,
    half_map_fsc,
    postprocess_half_maps,
)
from cryomath.resolution.masks import auto_mask, corrected_fsc, randomize_phases
from cryomath.resolution.postprocess import (
    apply_bfactor,
    fit_bfactor,
    flatten_spectrum,
    fsc_weighting,
    guinier,
    low_pass,
    weight_by_shell,
)
from cryomath.resolution.streamed import fourier_shell_correlation_streamed

__all__ = [
    "FSCCurve",
    "HalfMapFSC",
    "PostProcessed",
    "apply_bfactor",
    "auto_mask",
    "automatic_mask",
    "corrected_fsc",
    "crossing_frequency",
    "fit_bfactor",
    "flatten_spectrum",
    "fourier_ring_correlation",
    "fourier_shell_correlation",
    "fourier_shell_correlation_streamed",
    "fsc_weighting",
    "guinier",
    "half_bit_threshold",
    "half_map_fsc",
    "local_resolution",
    "low_pass",
    "postprocess_half_maps",
    "randomize_phases",
    "resolution_angstrom",
    "three_sigma_threshold",
    "weight_by_shell",
]
