"""Trilinear slice sampling as one compiled kernel (opt-in: ``compiled=True``).

The eager path makes three passes over every sample (its coordinates, their ``grid_sample``
normalisation, then torch's ``grid_sampler_3d``, whose CPU kernel is scalar). Here one function
computes ``A^T k``, the Friedel flip, the eight corner loads, the interpolation and the sign,
and ``torch.compile`` fuses it into one loop (C++ with OpenMP on the CPU, Triton on CUDA).

Layout: the prepared spectrum ``(2, z, y, x)`` is read as ``(z + 2, y + 2, x + 2, 2)`` with a
zero plane on both sides of each axis, so that a corner outside the spectrum reads zero, as
``grid_sample``'s zero padding does; results equal the eager path's to float32 rounding and
gradients flow to the spectrum and the rotations. The first call for a new shape compiles
(10-35 s on two CPU cores); chunks are padded to one shape so that a run compiles once.
"""

import torch
import torch.nn.functional as F

_KERNEL = None


def padded_spectrum(data: torch.Tensor) -> torch.Tensor:
    """``data (2, z, y, x)`` (real and imaginary parts) -> ``(z + 2, y + 2, x + 2, 2)``."""
    return F.pad(data.permute(1, 2, 3, 0), (0, 0, 1, 1, 1, 1, 1, 1)).contiguous()


def _sample(padded: torch.Tensor, rotations: torch.Tensor, frequencies: torch.Tensor,
            scale: float, centre: float) -> torch.Tensor:  # fmt: skip
    """``(P, K, 2)`` samples of ``padded`` at ``A^T k`` for ``rotations (P, 3, 3)`` and
    ``frequencies (K, 2)``: index ``= p * scale + (0, centre, centre)`` before the padding."""
    zp, yp, xp = padded.shape[:3]
    flat = padded.reshape(-1, 2)
    q = torch.matmul(frequencies, rotations[:, :2, :] * scale)  # (P, K, 3): (x, y, z)
    sign = torch.where(q[..., :1] < 0, -1.0, 1.0).to(q.dtype)  # F(-k) = conj F(k)
    q = q * sign
    x, y, z = q[..., 0] + 1, q[..., 1] + (centre + 1), q[..., 2] + (centre + 1)
    x0, y0, z0 = x.floor(), y.floor(), z.floor()
    tx, ty, tz = (x - x0)[..., None], (y - y0)[..., None], (z - z0)[..., None]
    base = (z0.long().clamp(0, zp - 2) * yp + y0.long().clamp(0, yp - 2)) * xp
    base = base + x0.long().clamp(0, xp - 2)
    dy, dz = xp, yp * xp

    def row(offset):  # linear along x between two corners
        return torch.lerp(flat[base + offset], flat[base + offset + 1], tx)

    plane0 = torch.lerp(row(0), row(dy), ty)
    plane1 = torch.lerp(row(dz), row(dz + dy), ty)
    values = torch.lerp(plane0, plane1, tz)
    return torch.stack([values[..., 0], values[..., 1] * sign[..., 0]], -1)


def sample_slices(padded, rotations, frequencies, scale: float, centre: float) -> torch.Tensor:
    """:func:`_sample` through ``torch.compile`` (compiled once per process and shape)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = torch.compile(_sample, dynamic=False)
    return _KERNEL(padded, rotations, frequencies, scale, centre)
