"""Probability distributions on SO(3), S^3 and S^2: each has ``log_prob`` and ``sample``."""

from cryomath.so3.distributions.bingham import Bingham
from cryomath.so3.distributions.haar import haar_angle_log_prob
from cryomath.so3.distributions.isotropic_gaussian import IsotropicGaussian
from cryomath.so3.distributions.matrix_fisher import MatrixFisher
from cryomath.so3.distributions.von_mises_fisher import VonMisesFisher

__all__ = ["Bingham", "IsotropicGaussian", "MatrixFisher", "VonMisesFisher", "haar_angle_log_prob"]
