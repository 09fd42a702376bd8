"""The slow, exact real-space reference projector: rotate with trilinear interpolation, sum
along z. Used by the tests as the oracle for the Fourier projector (it is what cryoDRGN's toy
projections were made with)."""

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import grid_sample_coordinates
from cryomath.so3.checks import check_rotation_matrices


def _centred_coordinates(n: int, dtype, device) -> torch.Tensor:
    """``(n, n, n, 3)`` voxel coordinates ``(x, y, z)`` relative to the centre ``n // 2``."""
    axis = torch.arange(n, dtype=dtype, device=device) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], -1)


def project_real_space(volume: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Projections of a cubic ``volume (n, n, n)`` (z, y, x) at poses ``rotations (..., 3, 3)``
    (RELION's A): ``image(x, y) = sum_z V(A^T (x, y, z))``, trilinear, zero outside the box.
    Returns ``(..., n, n)``. Memory is ``n^3`` samples per pose; meant for tests."""
    n = volume.shape[-1]
    if volume.ndim != 3 or volume.shape != (n, n, n):
        raise InvalidInputError(f"need one cubic volume (n, n, n), got {tuple(volume.shape)}")
    check_rotation_matrices(rotations)
    batch = rotations.shape[:-2]
    r = _centred_coordinates(n, volume.dtype, volume.device)
    images = []
    for a in rotations.reshape(-1, 3, 3):
        sample = r @ a  # row vectors: (A^T r)^T = r^T A
        grid = grid_sample_coordinates(sample + n // 2, volume.shape)
        values = F.grid_sample(
            volume[None, None],
            grid[None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )[0, 0]
        images.append(values.sum(0))
    return torch.stack(images).reshape(*batch, n, n)
