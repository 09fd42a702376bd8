"""The hand of two maps: a fit of the query as given against one of its mirror image
(``check_hand``: from the fits alone; ``fit_both_hands``: each hand aligned and scored by its
FSC against a reference, the truth of a simulation)."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryomath.fitting.align import align_maps
from cryomath.fitting.refine import transform_map
from cryomath.resolution import FSCCurve, fourier_shell_correlation, resolution_angstrom


@dataclass
class HandCheck:
    """``hand``: "same" or "opposite"; the normalised Z of the best fit of the query as given
    and of its mirror image (``flip_hand``)."""

    hand: str
    normalized_z_score: float
    mirrored_normalized_z_score: float


def check_hand(
    reference: torch.Tensor, reference_voxel_size_angstrom: float, reference_origin_angstrom,
    query: torch.Tensor, query_voxel_size_angstrom: float, query_origin_angstrom,
    best_normalized_z_score: float, **options,
) -> HandCheck:  # fmt: skip
    """No rotation maps a structure onto its mirror image: fit the query's (``flip_hand``, with the
    search ``options`` of :func:`align_maps`, refined, top 3) and call the hands opposite when
    that fit's normalised Z is more than twice the given fit's and above 8 (two maps
    reconstructed with opposite hands)."""
    options = {**options, "top": 3}
    fits = align_maps(reference, reference_voxel_size_angstrom, reference_origin_angstrom,
                      flip_hand(query), query_voxel_size_angstrom, query_origin_angstrom,
                      **options)  # fmt: skip
    mirrored = fits[0].normalized_z_score
    opposite = mirrored > max(2 * best_normalized_z_score, 8.0)
    return HandCheck("opposite" if opposite else "same", best_normalized_z_score, mirrored)


def flip_hand(volume: torch.Tensor) -> torch.Tensor:
    """The mirror image of ``volume (..., z, y, x)`` through its central z plane (the other
    hand; projections cannot tell them apart: its projection at pose ``M A M``, ``M =
    diag(1, 1, -1)``, is the original's at ``A``)."""
    return volume.flip(-3).roll(1 - volume.shape[-3] % 2, -3)


@dataclass
class HandedFit:
    """The query in one hand (``mirrored``: through its central z plane, ``flip_hand``),
    ``moved`` onto the reference's grid by its best rigid fit; its FSC against the reference,
    where that crosses 0.5 (A) and the fit's correlation."""

    mirrored: bool
    volume: torch.Tensor
    moved: torch.Tensor
    fsc: FSCCurve
    resolution_angstrom: float
    correlation: float


def fit_both_hands(reference: torch.Tensor, query: torch.Tensor, voxel_size_angstrom: float,
                   origin_angstrom=None) -> tuple[HandedFit, HandedFit]:  # fmt: skip
    """``query`` as given and mirrored, each aligned onto ``reference`` (the same grid:
    ``(n, n, n)`` voxels of ``voxel_size_angstrom``, origin ``(x, y, z)`` A, zero by default)
    by ``align_maps`` and scored by the FSC between them (the better hand is the reference's)."""
    voxel = voxel_size_angstrom
    origin = np.zeros(3) if origin_angstrom is None else np.asarray(origin_angstrom)
    fits = []
    for mirrored in (False, True):
        volume = flip_hand(query) if mirrored else query
        fit = align_maps(reference, voxel, origin, volume, voxel, origin, top=3)[0]
        rotation = fit.rotation_matrix.to(volume.device, volume.dtype)
        translation = fit.translation_angstrom.to(volume.device, volume.dtype)
        moved = transform_map(volume, voxel, origin, rotation, translation, reference.shape,
                              voxel, origin)  # fmt: skip
        curve = fourier_shell_correlation(moved, reference.to(moved.dtype), voxel)
        correlation = math.nan if fit.correlation is None else fit.correlation
        fits.append(HandedFit(mirrored, volume, moved, curve, resolution_angstrom(curve, 0.5),
                              correlation))  # fmt: skip
    return fits[0], fits[1]
