"""Preparing maps for alignment: coarse resampling with origin bookkeeping, thresholds, and
VESPER's density vectors.

A density vector at a grid point points toward the local density maximum: VESPER takes one
mean-shift step with a Gaussian of ``sigma = bandwidth / (2 sqrt 3)``, which is the normalised
gradient of the Gaussian-smoothed map (conventions-facts.md). Here it is computed exactly that
way, with FFT convolutions: ``grad(G * V) = F^-1[2 pi i k G(k) V(k)]``.
"""

import math

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.crop import rescale
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid

PROTEIN_DENSITY_DA_PER_A3 = 0.81  # average protein density (Fischer et al., Protein Sci 2004)


def coarse_grid(
    volume: torch.Tensor,
    voxel_size_angstrom: float,
    origin_angstrom,
    grid_spacing_angstrom: float,
) -> tuple[torch.Tensor, float, np.ndarray]:
    """Resample a cubic map to about ``grid_spacing_angstrom`` (Fourier crop, so no aliasing);
    returns ``(map, actual spacing, origin)`` with the physical position of voxel ``n // 2``
    unchanged (origin = position of voxel 0, ``(x, y, z)`` Angstrom)."""
    n = volume.shape[-1]
    coarse, spacing = rescale(volume, 3, voxel_size_angstrom, grid_spacing_angstrom)
    m = coarse.shape[-1]
    centre = np.asarray(origin_angstrom, dtype=np.float64) + (n // 2) * voxel_size_angstrom
    return coarse, spacing, centre - (m // 2) * spacing


def threshold_for_volume(
    volume: torch.Tensor, voxel_size_angstrom: float, enclosed_angstrom3: float
) -> float:
    """The threshold above which ``enclosed_angstrom3`` of the map lies (at least one voxel)."""
    k = max(1, round(enclosed_angstrom3 / voxel_size_angstrom**3))
    if k >= volume.numel():
        raise InvalidInputError(
            f"{enclosed_angstrom3:.4g} A^3 above the threshold does not fit in this box"
        )
    return float(volume.flatten().kthvalue(volume.numel() - k).values)


def threshold_for_mass(volume: torch.Tensor, voxel_size_angstrom: float, mass_kda: float) -> float:
    """The threshold enclosing the volume of ``mass_kda`` of protein (0.81 Da/A^3)."""
    if not mass_kda > 0:
        raise InvalidInputError(f"a mass must be positive, got {mass_kda} kDa")
    enclosed = mass_kda * 1000 / PROTEIN_DENSITY_DA_PER_A3
    return threshold_for_volume(volume, voxel_size_angstrom, enclosed)


def automatic_threshold(volume: torch.Tensor) -> float:
    """Documented automatic rule: mean + 2 standard deviations of a ``(z, y, x)`` map."""
    if volume.numel() < 2:  # one voxel has no spread
        raise InvalidInputError(f"a map of {volume.numel()} voxel has no automatic threshold "
                                "(mean + 2 sd): give one")  # fmt: skip
    return float(volume.mean() + 2 * volume.std())


def fill_constant_background(volume: torch.Tensor) -> torch.Tensor:
    """The map with a constant fill replaced by its solvent level.

    A viewer that resamples a map into a bigger box fills the new corners with one constant
    (often negative); the step it makes dominates thresholds (mean + 2 sd) and density vectors.
    The fill is the most common exact value on the box's faces when it covers a quarter of
    them, is not zero (a zero background is what masked and segmented maps mean, and what the
    resampling pads with) and lies more than one standard deviation from the median of the
    other voxels (the solvent); its voxels take that median. Other maps are returned
    unchanged."""
    faces = torch.cat([volume[[0, -1]].flatten(), volume[:, [0, -1]].flatten(),
                       volume[:, :, [0, -1]].flatten()])  # fmt: skip
    values, counts = faces.unique(return_counts=True)
    best = int(counts.argmax())
    if counts[best] < faces.numel() / 4 or values[best] == 0:
        return volume
    fill = volume == values[best]
    rest = volume[~fill]
    if rest.numel() < 2:
        return volume
    solvent = rest.median()
    if float((values[best] - solvent).abs()) <= float(rest.std()):
        return volume
    return torch.where(fill, solvent, volume)


def density_vectors(
    volume: torch.Tensor,
    voxel_size_angstrom: float,
    threshold: float,
    bandwidth_angstrom: float = 16.0,
) -> torch.Tensor:
    """``(3, z, y, x)`` unit vectors ``(vx, vy, vz)`` toward the local density maximum at the
    voxels above ``threshold``, zero elsewhere."""
    shape = tuple(volume.shape[-3:])
    sigma = bandwidth_angstrom / (2 * math.sqrt(3))
    k = (
        fftfreq_grid(shape, rfft=True, dtype=volume.dtype, device=volume.device)
        / voxel_size_angstrom
    )
    gaussian = torch.exp(-2 * math.pi**2 * sigma**2 * (k * k).sum(-1))
    spectrum = fft_nd(volume, 3, rfft=True) * gaussian
    gradient = torch.stack(
        [ifft_nd(spectrum * (2j * math.pi * k[..., i]), shape, rfft=True) for i in range(3)]
    )
    norm = torch.linalg.vector_norm(gradient, dim=0, keepdim=True)
    occupied = (volume > threshold) & (norm[0] > 0)
    return torch.where(occupied, gradient / norm.clamp(min=1e-30), 0.0)
