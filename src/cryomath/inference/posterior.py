"""Marginalisation over pose hypotheses: priors, posterior weights and RELION's per-particle
summaries (Scheres 2012; ``ml_optimiser.cpp``'s names in brackets).

For scores ``log p(X_b | s, r)`` ``(B, S, R)`` (``gaussian_pose_scores``) and log priors on
shifts ``(B, S)`` or ``(S,)`` and on references ``(R,)`` or ``(B, R)`` (classes x orientations),
the posterior
is ``w_bsr = exp(log p + prior - L_b)`` with the evidence ``L_b = logsumexp`` over all (s, r)
[``rlnLogLikeliContribution``]; ``max_probability`` is the largest weight
[``rlnMaxValueProbDistribution``] and ``significant`` the fewest hypotheses that hold ``mass``
of the posterior (RELION's adaptive fraction, 0.999) [``rlnNrOfSignificantSamples``].
"""

import math
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError, holds

_LOG2_E = 1 / math.log(2)


@dataclass
class Posterior:
    """``weights (B, S, R)`` (each image's sum to 1), ``log_evidence (B,)``,
    ``max_probability (B,)``, ``significant (B,)`` (see the module docstring) and the smallest
    significant weight ``(B,)`` [``exp_significant_weight``] (0 when not counted)."""

    weights: torch.Tensor
    log_evidence: torch.Tensor
    max_probability: torch.Tensor
    significant: torch.Tensor
    significant_weight: torch.Tensor

    def significant_weights(self) -> torch.Tensor:
        """``weights`` with those below each image's significant weight set to 0: what RELION's
        M-step adds (``storeWeightedSums``: ``mass`` of each image's weight, on the few
        hypotheses that hold it, so that the sums need only those)."""
        return torch.where(self.weights >= self.significant_weight[:, None, None], self.weights,
                           0)  # fmt: skip


def offset_log_prior(shifts_px: torch.Tensor, centre_px: torch.Tensor, sigma_px: float):
    """``(B, S)`` log density of the 2-D Gaussian offset prior (sd ``sigma_px`` per axis) about
    each image's ``centre_px (B, 2)`` (its previous offset), at ``shifts_px (S, 2)``."""
    if not (math.isfinite(sigma_px) and sigma_px > 0):
        raise InvalidInputError(f"the offset prior's sd must be positive, got {sigma_px}")
    d2 = ((shifts_px[None] - centre_px[:, None]) ** 2).sum(-1)
    return -d2 / (2 * sigma_px**2) - math.log(2 * math.pi * sigma_px**2)


def rank_hypotheses(weights: torch.Tensor, mass: float):
    """``weights (B, H)`` sorted best first (``torch.sort``'s values and indices; only the
    leading ones where the rest cannot count) and, per row, the fewest hypotheses that hold
    ``mass`` of its weight ``(B,)``."""
    if not 0 < mass <= 1:
        raise InvalidInputError(f"mass must be in (0, 1], got {mass}")
    # the weights below (1 - mass) / H hold less than 1 - mass together: a sharp posterior
    # ranks only the few others (all of them where rounding leaves a row short)
    h = weights.shape[1]
    k = int((weights >= (1 - mass) / h).sum(1).max()) if h else 0
    if 0 < k < h:
        ordered = weights.topk(k, 1)
        held = _held(ordered.values, mass)
        if not bool((held > k).any()):
            return ordered, held
    ordered = weights.sort(1, descending=True)
    return ordered, _held(ordered.values, mass)


def _held(ordered: torch.Tensor, mass: float) -> torch.Tensor:
    """The cumulative weights below ``mass`` (a little slack for rounding), plus the one
    reaching it."""
    return (ordered.cumsum(1) < mass * (1 - 1e-12)).sum(1) + 1


def posterior(
    scores: torch.Tensor,
    log_prior_shifts: torch.Tensor | None = None,
    log_prior_references: torch.Tensor | None = None,
    mass: float = 0.999,
    count_significant: bool = True,
) -> Posterior:
    """The posterior over ``scores (B, S, R)`` with the given log priors (None: uniform);
    ``count_significant=False`` skips the ranking (``significant`` is then 0)."""
    if scores.ndim != 3:
        raise InvalidInputError(f"scores must be (B, S, R), got {tuple(scores.shape)}")
    total = scores.clone() if log_prior_shifts is None else (
        scores + log_prior_shifts.expand(scores.shape[:2])[..., None])  # fmt: skip
    if log_prior_references is not None:  # (R,), or (B, R) for each image's own hypotheses
        prior = log_prior_references
        total += prior[:, None] if prior.ndim == 2 else prior
    flat = total.flatten(1)
    top = flat.amax(1, keepdim=True)  # logsumexp by hand: one exponential, not two
    # amax propagates NaN: checked on (B,) values, not on every score (-inf: a zero prior)
    if not holds(~torch.isnan(top).any()):
        raise InvalidInputError("the scores or priors contain NaN")
    # exp(x) as exp2(x log2 e), after the difference from the top (exact where it matters):
    # torch's exp takes a slow path below about -88, where most of a posterior's arguments lie
    # (15-25x slower on the CPU), its exp2 does not
    weights = flat.sub_(top).mul_(_LOG2_E).exp2_()
    total = weights.sum(1)
    evidence = top[:, 0] + torch.log(total)
    weights /= total[:, None]
    if not count_significant:
        significant = torch.zeros(len(flat), dtype=torch.int64, device=flat.device)
        return Posterior(weights.view(scores.shape), evidence, weights.amax(1), significant,
                         torch.zeros_like(evidence))  # fmt: skip
    ordered, significant = rank_hypotheses(weights, mass)
    smallest = ordered.values.gather(1, (significant - 1)[:, None])[:, 0]
    return Posterior(weights.view(scores.shape), evidence, ordered.values[:, 0], significant,
                     smallest)  # fmt: skip
