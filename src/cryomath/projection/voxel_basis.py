"""Fourier projection of a volume seen as a sum of trilinear (tent) basis functions.

The real-space projector (``project_real_space``: rotate with trilinear interpolation, sum
along z) projects the continuous function ``f = sum_j V_j tent(x - j)`` sampled at integer
points; cryoDRGN's toy projections are made that way. By Poisson summation its image spectrum is

    I(k) = sum_{l in Z^3} V_dtft(A^T (k + l)) * tent_hat(A^T (k + l)),    k = (kx, ky, 0),

with ``tent_hat(q) = prod_i sinc^2(q_i)`` and ``V_dtft`` the volume's discrete-time transform
(periodic, period 1 cycle/voxel). The band-limited projector (``project_fourier``) keeps only
``l = 0`` without the tent factor, so on a volume that is not band-limited (a binary toy map)
the two differ by the tent's blur (``l = 0``) and by aliasing (``l != 0``). This module sums
``|l_i| <= alias_order``; ``tent_hat`` decays as ``1 / |q|^2`` per axis, so order 1 is ~1e-3.

Layout and conventions as in ``fourier_slice``: ``volume (..., n, n, n)`` (z, y, x),
``rotations (..., 3, 3)`` RELION's A, result ``(..., n, n)`` in voxel units. ``V_dtft`` is
sampled from the zero-padded full FFT with cubic B-spline interpolation (gridding-corrected),
periodically extended by circular padding so samples beyond Nyquist wrap.
"""

import itertools

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.projection.fourier_slice import (
    _check_volume,
    _sample_cubic,
    gridding_correction,
)

_HALO = 2  # the cubic B-spline reads indices base - 1 .. base + 2


def project_fourier_voxel_basis(
    volume: torch.Tensor,
    rotations: torch.Tensor,
    pad_factor: float = 2.0,
    alias_order: int = 1,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Projections ``(..., P..., n, n)`` of ``volume (..., n, n, n)`` as trilinear basis
    functions at ``rotations (..., P..., 3, 3)``; see the module docstring. Differentiable in
    the volume and the rotations. Costs ``(2 * alias_order + 1)^3`` cubic slices per image."""
    n = _check_volume(volume)
    n_pad = round(n * pad_factor)
    batch = tuple(volume.shape[:-3])
    v = volume.reshape(-1, n, n, n)
    v = v / gridding_correction(n, n_pad, "cubic", v.dtype, v.device)
    before = n_pad // 2 - n // 2
    v = F.pad(v, (before, n_pad - n - before) * 3)
    f = fft_nd(v, 3, rfft=False, fftshift=True)
    data = F.pad(torch.stack([f.real, f.imag], 1), (_HALO,) * 6, mode="circular")

    nb = len(batch)
    rotations = rotations.to(v.dtype).expand(*batch, *rotations.shape[nb:])
    pose_shape = rotations.shape[nb:-2]
    r = rotations.reshape(v.shape[0], -1, 1, 1, 3, 3)
    k = fftfreq_grid((n, n), rfft=False, fftshift=True, dtype=v.dtype, device=v.device)
    k = F.pad(k, (0, 1))  # (n, n, 3): (kx, ky, 0)
    aliases = range(-alias_order, alias_order + 1)
    out = []
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    for start in range(0, r.shape[1], chunk_size):
        rows = r[:, start : start + chunk_size]
        total = 0
        for alias in itertools.product(aliases, repeat=3):
            kappa = k + k.new_tensor(alias)
            q = (kappa[..., None] * rows).sum(-2)  # A^T kappa, (B, p, n, n, 3)
            tent = (torch.sinc(q) ** 2).prod(-1)
            wrapped = torch.remainder(q + 0.5, 1.0) - 0.5
            values = _sample_cubic(data, wrapped * n_pad + (n_pad // 2 + _HALO))
            total = total + values * tent[:, None]
        out.append(torch.complex(total[:, 0], total[:, 1]))
    spectra = torch.cat(out, 1)
    images = ifft_nd(spectra, (n, n), rfft=False, fftshift=True)
    return images.reshape(*batch, *pose_shape, n, n)
