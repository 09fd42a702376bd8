"""Inference from images (poses, classes): expectation-maximisation on top of ``imaging``.

* :func:`gaussian_pose_scores`: the E-step's core, the Gaussian log-likelihood of every
  (image, shift) against every reference projection, as two matrix products.
* :func:`posterior` (a :class:`Posterior`) and :func:`offset_log_prior`: marginalisation over
  the hypotheses with priors, and RELION's per-particle summaries.
"""

from cryomath.inference.posterior import Posterior, offset_log_prior, posterior
from cryomath.inference.scores import gaussian_pose_scores

__all__ = ["Posterior", "gaussian_pose_scores", "offset_log_prior", "posterior"]
