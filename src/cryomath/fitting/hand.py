"""The hand of two maps: a fit of the query as given against one of its mirror image."""

from dataclasses import dataclass

import torch

from cryomath.fitting.align import align_maps


@dataclass
class HandCheck:
    """``hand``: "same" or "opposite"; the normalised Z of the best fit of the query as given
    and of the query mirrored in x."""

    hand: str
    normalized_z_score: float
    mirrored_normalized_z_score: float


def check_hand(
    reference: torch.Tensor, reference_voxel_size_angstrom: float, reference_origin_angstrom,
    query: torch.Tensor, query_voxel_size_angstrom: float, query_origin_angstrom,
    best_normalized_z_score: float, **options,
) -> HandCheck:  # fmt: skip
    """No rotation maps a structure onto its mirror image: fit the query mirrored in x (with the
    search ``options`` of :func:`align_maps`, refined, top 3) and call the hands opposite when
    that fit's normalised Z is more than twice the given fit's and above 8 (two maps
    reconstructed with opposite hands)."""
    options = {**options, "top": 3}
    fits = align_maps(reference, reference_voxel_size_angstrom, reference_origin_angstrom,
                      query.flip(-1), query_voxel_size_angstrom, query_origin_angstrom,
                      **options)  # fmt: skip
    mirrored = fits[0].normalized_z_score
    opposite = mirrored > max(2 * best_normalized_z_score, 8.0)
    return HandCheck("opposite" if opposite else "same", best_normalized_z_score, mirrored)
