"""Inference from images (poses, classes): expectation-maximisation on top of ``imaging``.

* :func:`gaussian_pose_scores`: the E-step's core, the Gaussian log-likelihood of every
  (image, shift) against every reference projection, as two matrix products;
  :func:`poisson_pose_scores`, the same for counting images (Poisson), one batched product.
* :func:`posterior` (a :class:`Posterior`) and :func:`offset_log_prior`: marginalisation over
  the hypotheses with priors, and RELION's per-particle summaries.
* :func:`insert_posterior`: the M-step's sums, each image inserted at its significant
  hypotheses with its posterior weights.
"""

from cryomath.inference.maximization import insert_posterior
from cryomath.inference.poisson import poisson_pose_scores
from cryomath.inference.posterior import Posterior, offset_log_prior, posterior
from cryomath.inference.scores import gaussian_pose_scores

__all__ = [
    "Posterior",
    "gaussian_pose_scores",
    "insert_posterior",
    "offset_log_prior",
    "poisson_pose_scores",
    "posterior",
]
