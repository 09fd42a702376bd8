"""Inference from images (poses, classes): expectation-maximisation on top of ``imaging``.

* :func:`gaussian_pose_scores`: the E-step's core, the Gaussian log-likelihood of every
  (image, shift) against every reference projection, as two matrix products.
"""

from cryomath.inference.scores import gaussian_pose_scores

__all__ = ["gaussian_pose_scores"]
