"""The M-step's sufficient statistics: each image inserted at its significant hypotheses.

For each image, the hypotheses (shift ``t_s``, reference orientation ``R_r``) are ranked by
posterior weight and the fewest that hold ``mass`` of it are kept (RELION's significant samples;
the same number for the whole batch, the largest any image needs, so the insertion is one
batched call); each is inserted through ``imaging.insert_spectra`` with its posterior weight:
``sum w CTF X conj(ramp)`` into the data and ``sum w CTF^2`` into the weights of the
accumulator, which ``reconstruction.invert`` divides.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.imaging import FourierAccumulator, ParticleBatch, insert_spectra
from cryomath.inference.posterior import Posterior, rank_hypotheses


def insert_posterior(
    accumulator: FourierAccumulator,
    batch: ParticleBatch,
    result: Posterior,
    rotations: torch.Tensor,
    shifts_px: torch.Tensor,
    mass: float = 0.999,
) -> int:
    """Add the batch's images at their significant hypotheses (``rotations (R, 3, 3)``, the
    references' orientations, and ``shifts_px (S, 2)``, as scored) to ``accumulator``, weighted
    by the posterior ``result``; returns how many hypotheses per image were inserted."""
    b, s, r = result.weights.shape
    if len(batch) != b or rotations.shape != (r, 3, 3) or shifts_px.shape != (s, 2):
        raise InvalidInputError(
            f"posterior {tuple(result.weights.shape)} does not match {len(batch)} images, "
            f"rotations {tuple(rotations.shape)} and shifts {tuple(shifts_px.shape)}"
        )
    if batch.spectra is None:
        raise InvalidInputError("the M-step needs the batch's images")
    ordered, held = rank_hypotheses(result.weights.flatten(1), mass)
    keep = int(held.max())
    top = ordered.indices[:, :keep]  # (B, k) flat (s, r) indices, best first
    chosen = ordered.values[:, :keep]
    insert_spectra(
        accumulator, batch.spectra, batch, rotations.to(batch.dtype)[top % r],
        shifts_px.to(batch.dtype)[top // r], chosen,
    )  # fmt: skip
    return keep
