"""Fourier shell (3-D) and ring (2-D) correlation in O(N): one rfft per map and shell sums by
``index_add``, with the rfft Hermitian multiplicity counted, batched over leading dims.

``FSC(s) = Re sum_k w F1 F2* / sqrt(sum_k w |F1|^2 sum_k w |F2|^2)`` over the samples of shell s
(``round(|k| n) = s``, k in cycles/pixel), ``w`` the rfft multiplicity. Shells ``0 .. n // 2``;
shell s is at ``s / (n * voxel_size)`` per Angstrom (RELION's ``rlnResolution``).
"""

from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd
from cryomath.fourier.shells import hermitian_multiplicity, shell_index, shell_sum


@dataclass
class FSCCurve:
    """``fsc (..., n_shells)``, ``spatial_frequency_per_angstrom (n_shells,)`` and the number of
    full-spectrum samples per shell ``counts (n_shells,)``."""

    fsc: torch.Tensor
    spatial_frequency_per_angstrom: torch.Tensor
    counts: torch.Tensor


def _check_pair(a: torch.Tensor, b: torch.Tensor, ndim: int) -> int:
    if a.shape[-ndim:] != b.shape[-ndim:]:
        raise InvalidInputError(f"maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    shape = a.shape[-ndim:]
    if len(set(shape)) != 1:
        raise InvalidInputError(f"FSC needs square/cubic maps, got {tuple(shape)}")
    for m in (a, b):
        if not bool(torch.isfinite(m).all()):
            raise InvalidInputError("a map contains NaN or inf")
    return int(shape[0])


def fourier_shell_correlation(
    map1: torch.Tensor,
    map2: torch.Tensor,
    voxel_size_angstrom: float = 1.0,
    mask: torch.Tensor | None = None,
    ndim: int = 3,
) -> FSCCurve:
    """FSC (``ndim=3``) or FRC (``ndim=2``) of ``(..., n, n[, n])`` maps, after multiplying both
    by ``mask`` if given."""
    n = _check_pair(map1, map2, ndim)
    if mask is not None:
        if mask.shape[-ndim:] != map1.shape[-ndim:]:
            raise InvalidInputError(
                f"mask shape {tuple(mask.shape)} does not match the maps {tuple(map1.shape)}"
            )
        map1, map2 = map1 * mask, map2 * mask
    shape = tuple(map1.shape[-ndim:])
    f1, f2 = fft_nd(map1, ndim, rfft=True), fft_nd(map2, ndim, rfft=True)
    w = hermitian_multiplicity(shape, dtype=map1.dtype, device=map1.device)
    shells = shell_index(shape, device=map1.device)
    n_shells = n // 2 + 1
    cross = shell_sum(w * (f1 * f2.conj()).real, shells, n_shells)
    p1 = shell_sum(w * f1.abs() ** 2, shells, n_shells)
    p2 = shell_sum(w * f2.abs() ** 2, shells, n_shells)
    fsc = cross / torch.sqrt(p1 * p2).clamp(min=torch.finfo(map1.dtype).tiny)
    counts = shell_sum(w, shells, n_shells)
    frequency = torch.arange(n_shells, dtype=map1.dtype, device=map1.device) / (
        n * voxel_size_angstrom
    )
    return FSCCurve(fsc, frequency, counts)


def fourier_ring_correlation(
    image1: torch.Tensor, image2: torch.Tensor, pixel_size_angstrom: float = 1.0
) -> FSCCurve:
    """FRC of ``(..., n, n)`` images."""
    return fourier_shell_correlation(image1, image2, pixel_size_angstrom, ndim=2)
