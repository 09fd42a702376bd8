"""Haar-uniform random rotations: normalised 4-D Gaussian vectors are uniform on S^3, and the
double cover maps the uniform measure on S^3 to the Haar measure on SO(3)."""

import torch

from cryomath.so3.quaternion import matrix_from_quaternion


def random_quaternions(
    n: int,
    generator: torch.Generator | int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n, 4)`` Haar-uniform unit quaternions with ``w >= 0``; ``generator`` may be a seed."""
    if isinstance(generator, int):
        generator = torch.Generator(device=device or "cpu").manual_seed(generator)
    q = torch.randn(n, 4, generator=generator, dtype=dtype, device=device)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def random_rotations(
    n: int,
    generator: torch.Generator | int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n, 3, 3)`` Haar-uniform rotation matrices; ``generator`` may be a seed."""
    return matrix_from_quaternion(random_quaternions(n, generator, dtype, device))
