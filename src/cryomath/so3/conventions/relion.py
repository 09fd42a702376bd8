"""RELION's Euler angles (rot, tilt, psi), in degrees: the internal pose convention.

``A = (Rz(rot) Ry(tilt) Rz(psi))^T``: A rotates the reference into the particle; the image is the
projection along z of ``V(A^T r)``. The same triplet is SPIDER's, XMIPP's, FREALIGN's and
cisTEM's (phi, theta, psi). Reading angles back follows RELION's ``Euler_matrix2angles``
(src/euler.cpp): rot and psi in (-180, 180], tilt in [0, 180], and at gimbal lock
(``sqrt(A02^2 + A12^2) <= 16 * FLT_EPSILON``) rot = 0 with the whole in-plane angle in psi.
"""

import torch

from cryomath.so3.conventions.ranges import wrap_signed_degrees
from cryomath.so3.euler import matrix_from_euler

_GIMBAL = 16 * 1.1920929e-07  # RELION's threshold: 16 * FLT_EPSILON


def matrix_from_relion_euler(angles_degrees: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` RELION angles (rot, tilt, psi) in degrees -> ``(..., 3, 3)`` pose matrices A."""
    return matrix_from_euler(torch.deg2rad(angles_degrees), "ZYZ").transpose(-1, -2)


def relion_euler_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` pose matrices A -> ``(..., 3)`` (rot, tilt, psi) in degrees, as RELION."""
    a = matrix
    sin_tilt = torch.sqrt(a[..., 0, 2] ** 2 + a[..., 1, 2] ** 2)
    regular = sin_tilt > _GIMBAL
    rot = torch.where(regular, torch.atan2(a[..., 2, 1], a[..., 2, 0]), torch.zeros_like(sin_tilt))
    tilt_regular = torch.atan2(sin_tilt, a[..., 2, 2])
    psi_regular = torch.atan2(a[..., 1, 2], -a[..., 0, 2])
    upright = a[..., 2, 2] > 0
    tilt_lock = torch.where(
        upright, torch.zeros_like(sin_tilt), torch.full_like(sin_tilt, torch.pi)
    )
    psi_lock = torch.where(
        upright, torch.atan2(-a[..., 1, 0], a[..., 0, 0]), torch.atan2(a[..., 1, 0], -a[..., 0, 0])
    )
    tilt = torch.where(regular, tilt_regular, tilt_lock)
    psi = torch.where(regular, psi_regular, psi_lock)
    # atan2 returns [-180, 180]; RELION's range for rot and psi is (-180, 180]
    return wrap_signed_degrees(torch.rad2deg(torch.stack([rot, tilt, psi], dim=-1)))
