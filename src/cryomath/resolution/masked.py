"""The FSC of two half maps as ``cryomath fsc``, ``reconstruct`` and ``postprocess`` report it:
unmasked, or masked and corrected by phase randomisation (Chen et al. 2013, as RELION's
``postprocess``), with the resolution at 0.143, 0.5 and the half-bit criterion; the automatic
mask recipe; and the post-processing of half maps.

Automatic mask: the average of the maps low-passed to 15 A, thresholded at its mean + 2.5
standard deviations, dilated 3 px, with a 6 px raised-cosine edge.
Phase randomisation starts at the first shell (after shell 0) where the unmasked FSC drops
below 0.8; the correction applies from that shell + 2.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.resolution.crossing import resolution_angstrom
from cryomath.resolution.curves import FSCCurve, fourier_shell_correlation
from cryomath.resolution.masks import auto_mask, corrected_fsc, randomize_phases
from cryomath.resolution.postprocess import (
    apply_bfactor,
    fit_bfactor,
    fsc_weighting,
    low_pass,
    weight_by_shell,
)


def automatic_mask(average: torch.Tensor, voxel_size_angstrom: float) -> torch.Tensor:
    """The automatic soft mask of a map (the module docstring's recipe)."""
    smooth = low_pass(average, 15.0, voxel_size_angstrom)
    threshold = float(smooth.mean() + 2.5 * smooth.std())
    return auto_mask(smooth, threshold, dilate_px=3.0, soft_edge_px=6.0)


@dataclass
class HalfMapFSC:
    """``unmasked`` curve, and with a mask the ``masked`` and ``randomized`` FSCs, the shell
    randomisation started at, and the ``final`` (corrected) FSC."""

    unmasked: FSCCurve
    final: torch.Tensor
    masked: torch.Tensor | None = None
    randomized: torch.Tensor | None = None
    randomize_from_shell: int | None = None

    @property
    def curve(self) -> FSCCurve:
        """The final FSC as a curve (the unmasked one's frequencies and counts)."""
        u = self.unmasked
        return FSCCurve(self.final, u.spatial_frequency_per_angstrom, u.counts)

    def summary(self) -> dict:
        """Resolutions (Angstrom, None where the curve never crosses) and the curves, as plain
        numbers for JSON and tables."""
        final = self.curve
        out = {
            "resolution_0143_angstrom": resolution_angstrom(final, 0.143),
            "resolution_05_angstrom": resolution_angstrom(final, 0.5),
            "resolution_half_bit_angstrom": resolution_angstrom(final, "half-bit"),
            "spatial_frequency_per_angstrom": final.spatial_frequency_per_angstrom.cpu().numpy(),
            "fsc": self.final.cpu().numpy(),
            "fsc_unmasked": self.unmasked.fsc.cpu().numpy(),
        }
        if self.masked is not None:
            out["fsc_masked"] = self.masked.cpu().numpy()
            out["fsc_phase_randomized"] = self.randomized.cpu().numpy()
            out["randomize_from_shell"] = self.randomize_from_shell
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in out.items()}


def half_map_fsc(
    map1: torch.Tensor,
    map2: torch.Tensor,
    voxel_size_angstrom: float,
    mask: torch.Tensor | None = None,
    seed: int = 0,
) -> HalfMapFSC:
    """The unmasked FSC, and with a ``mask`` the masked and phase-randomisation corrected one."""
    unmasked = fourier_shell_correlation(map1, map2, voxel_size_angstrom)
    if mask is None:
        return HalfMapFSC(unmasked, unmasked.fsc)
    masked = fourier_shell_correlation(map1, map2, voxel_size_angstrom, mask=mask)
    below = (unmasked.fsc < 0.8).nonzero().flatten()
    start = int(below[below >= 1][0]) if bool((below >= 1).any()) else len(unmasked.fsc) - 1
    g = torch.Generator().manual_seed(seed)
    r1, r2 = randomize_phases(map1, start, g), randomize_phases(map2, start, g)
    randomized = fourier_shell_correlation(r1, r2, voxel_size_angstrom, mask=mask).fsc
    final = corrected_fsc(masked.fsc, randomized, start)
    return HalfMapFSC(unmasked, final, masked.fsc, randomized, start)


@dataclass
class PostProcessed:
    """The post-processed map, its FSC, the B-factor applied (A^2) and the resolution it was
    low-passed to (A)."""

    volume: torch.Tensor
    fsc: HalfMapFSC
    bfactor_angstrom2: float
    resolution_angstrom: float


def postprocess_half_maps(
    half1: torch.Tensor,
    half2: torch.Tensor,
    voxel_size_angstrom: float,
    mask: torch.Tensor | None = None,
    bfactor_angstrom2: float | None = None,
    fit_bfactor_from_guinier: bool = False,
) -> PostProcessed:
    """RELION's post-processing: the average of the halves weighted per shell by
    ``sqrt(2 FSC / (1 + FSC))``, sharpened by ``bfactor_angstrom2`` (or the negative of the
    Guinier fit between 10 A and the resolution), low-passed at the 0.143 resolution and
    multiplied by the mask."""
    voxel = voxel_size_angstrom
    average = (half1 + half2) / 2
    fsc = half_map_fsc(half1, half2, voxel, mask)
    resolution = fsc.summary()["resolution_0143_angstrom"] or 2 * voxel
    weighted = weight_by_shell(average, fsc_weighting(fsc.final.to(average.device)))
    if fit_bfactor_from_guinier:
        masked = average if mask is None else average * mask
        bfactor_angstrom2 = -abs(fit_bfactor(masked, voxel, 10.0, max(resolution, 2 * voxel)))
    bfactor = bfactor_angstrom2 or 0.0
    final = low_pass(apply_bfactor(weighted, bfactor, voxel), resolution, voxel)
    if mask is not None:
        final = final * mask
    return PostProcessed(final, fsc, bfactor, resolution)
