"""The Haar (uniform) measure on SO(3) seen through the rotation angle: the angle omega of a
uniform rotation has density ``(1 - cos omega) / pi`` on ``[0, pi]``."""

import math

import torch


def haar_angle_log_prob(omega: torch.Tensor) -> torch.Tensor:
    """Log density of the rotation angles ``omega (...)`` (radians, in [0, pi]) of Haar-uniform
    rotations: ``log((1 - cos omega) / pi)``."""
    return torch.log1p(-torch.cos(omega)) - math.log(math.pi)
