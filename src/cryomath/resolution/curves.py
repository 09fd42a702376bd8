"""Fourier shell (3-D) and ring (2-D) correlation in O(N): one rfft per map and shell sums by
``index_add``, with the rfft Hermitian multiplicity counted, batched over leading dims.

``FSC(s) = Re sum_k w F1 F2* / sqrt(sum_k w |F1|^2 sum_k w |F2|^2)`` over the samples of shell s
(``round(|k| n) = s``, k in cycles/pixel), ``w`` the rfft multiplicity. Shells ``0 .. n // 2``;
shell s is at ``s / (n * voxel_size)`` per Angstrom (RELION's ``rlnResolution``).
"""

from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError, check_positive, holds
from cryomath.fourier.shells import hermitian_multiplicity, shell_sum


@dataclass
class FSCCurve:
    """``fsc (..., n_shells)``, ``spatial_frequency_per_angstrom (n_shells,)`` and the number of
    full-spectrum samples per shell ``counts (n_shells,)``."""

    fsc: torch.Tensor
    spatial_frequency_per_angstrom: torch.Tensor
    counts: torch.Tensor

    def to(self, device: str | torch.device) -> "FSCCurve":
        return FSCCurve(
            self.fsc.to(device), self.spatial_frequency_per_angstrom.to(device),
            self.counts.to(device),
        )  # fmt: skip


def _check_pair(a: torch.Tensor, b: torch.Tensor, ndim: int) -> int:
    if a.shape[-ndim:] != b.shape[-ndim:]:
        raise InvalidInputError(f"maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    shape = a.shape[-ndim:]
    if len(set(shape)) != 1:
        raise InvalidInputError(f"FSC needs square/cubic maps, got {tuple(shape)}")
    for name, m in (("first", a), ("second", b)):
        if not holds(torch.isfinite(m).all()):
            raise InvalidInputError(f"the {name} map contains NaN or inf")
        if not holds((m != 0).any()):
            raise InvalidInputError(f"the {name} map is all zeros: its FSC is undefined")
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
    check_positive(voxel_size_angstrom, "the voxel size", "A")
    if mask is not None:
        if mask.shape[-ndim:] != map1.shape[-ndim:]:
            raise InvalidInputError(
                f"mask shape {tuple(mask.shape)} does not match the maps {tuple(map1.shape)}"
            )
        if not holds(torch.isfinite(mask).all()) or not holds((mask != 0).any()):
            raise InvalidInputError("the mask is all zeros, or holds NaN or inf")
        map1, map2 = map1 * mask, map2 * mask
    # no centring shift: it multiplies both spectra by the same phases, which the FSC ignores
    # (and it would copy each map)
    dims = tuple(range(-ndim, 0))
    f1, f2 = torch.fft.rfftn(map1, dim=dims), torch.fft.rfftn(map2, dim=dims)
    n_shells = n // 2 + 1
    cross, p1, p2, counts = _shell_sums(f1, f2, n, ndim, n_shells)
    fsc = cross / torch.sqrt(p1 * p2).clamp(min=torch.finfo(map1.dtype).tiny)
    frequency = torch.arange(n_shells, dtype=map1.dtype, device=map1.device) / (
        n * voxel_size_angstrom
    )
    return FSCCurve(fsc, frequency, counts)


def _shell_sums(f1: torch.Tensor, f2: torch.Tensor, n: int, ndim: int, n_shells: int):
    """Per shell: ``sum Re(f1 f2*)``, ``sum |f1|^2``, ``sum |f2|^2`` and the sample count, over
    full spectra given as rfft halves (Hermitian mates counted). Done a slab of the first
    Fourier axis at a time (about 1M samples), so the temporaries (products, shell indices)
    are a slab's, not the volume's: a 256^3 FSC needs half the memory it would otherwise."""
    device, real = f1.device, f1.real.dtype
    first = torch.fft.fftfreq(n, device=device, dtype=torch.float64)
    last = torch.fft.rfftfreq(n, device=device, dtype=torch.float64)
    rest = last**2 if ndim == 2 else first[:, None] ** 2 + last**2  # squared |k| of other axes
    sums = torch.zeros(3, *f1.shape[:-ndim], n_shells, dtype=real, device=device)
    counts = torch.zeros(n_shells, dtype=real, device=device)
    per_slab = max(1, 2**20 // rest.numel())
    for start in range(0, n, per_slab):
        size = min(per_slab, n - start)
        k2 = first[start : start + size].reshape(-1, *[1] * (ndim - 1)) ** 2 + rest
        a, b = f1.narrow(-ndim, start, size), f2.narrow(-ndim, start, size)
        add_shell_sums(sums, counts, a, b, k2, n)
    return sums[0], sums[1], sums[2], counts


def add_shell_sums(sums, counts, a, b, k2, n: int) -> None:
    """Add a block of two rfft spectra ``a, b (..., *B)`` whose samples lie at squared
    frequencies ``k2 (B)`` (cycles/pixel; the last axis is the rfft one, all of it) to
    ``sums (3, ..., n_shells)`` (cross, power 1, power 2) and ``counts (n_shells,)``, in their
    dtype."""
    n_shells = counts.shape[-1]
    shells = torch.round(torch.sqrt(k2) * n).long()
    w = hermitian_multiplicity((n,), device=a.device, dtype=sums.dtype)  # along the rfft axis
    sums[0] += shell_sum(w * (a * b.conj()).real.to(sums.dtype), shells, n_shells)
    sums[1] += shell_sum(w * (a.real**2 + a.imag**2).to(sums.dtype), shells, n_shells)
    sums[2] += shell_sum(w * (b.real**2 + b.imag**2).to(sums.dtype), shells, n_shells)
    counts += shell_sum(w.expand(shells.shape), shells, n_shells)


def fourier_ring_correlation(
    image1: torch.Tensor, image2: torch.Tensor, pixel_size_angstrom: float = 1.0
) -> FSCCurve:
    """FRC of ``(..., n, n)`` images."""
    return fourier_shell_correlation(image1, image2, pixel_size_angstrom, ndim=2)
