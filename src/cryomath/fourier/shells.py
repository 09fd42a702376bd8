"""Radial shells in Fourier space and O(N) sums over them.

Shell ``s`` of a square/cubic box of size ``N`` holds the samples with
``round(|k| * N) == s``, ``|k|`` in cycles/pixel: shell ``N // 2`` is Nyquist along an axis,
and corner samples reach shell ``round(N * sqrt(ndim) / 2)``. In an rfft half spectrum every
sample except those of the x = 0 plane and (even N) the x = Nyquist plane stands for itself and
its Friedel mate, so it counts twice (:func:`hermitian_multiplicity`).
"""

from collections.abc import Sequence

import torch

from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.grids import fftfreq_grid, fourier_shape


def _box_size(image_shape: Sequence[int]) -> int:
    if len(set(image_shape)) != 1:
        raise InvalidInputError(
            f"shells need a square or cubic box, got shape {tuple(image_shape)}"
        )
    return int(image_shape[0])


def shell_index(
    image_shape: Sequence[int],
    *,
    rfft: bool = True,
    fftshift: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Integer shell of every Fourier sample, shape ``fourier_shape(image_shape, rfft)``."""
    n = _box_size(image_shape)
    k = fftfreq_grid(image_shape, rfft=rfft, fftshift=fftshift, device=device, dtype=torch.float64)
    return torch.round(torch.linalg.vector_norm(k, dim=-1) * n).long()


def hermitian_multiplicity(
    image_shape: Sequence[int],
    *,
    rfft: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """How many full-spectrum samples each stored sample stands for (1 or 2), broadcastable.

    For ``rfft=False`` this is all ones. Shape ``fourier_shape(image_shape, rfft)``.
    """
    dtype = dtype or torch.get_default_dtype()
    shape = fourier_shape(image_shape, rfft)
    weight = torch.ones(shape, device=device, dtype=dtype)
    if rfft:
        weight[..., 1:] = 2.0
        if image_shape[-1] % 2 == 0:
            weight[..., -1] = 1.0
    return weight


def shell_sum(values: torch.Tensor, shells: torch.Tensor, n_shells: int) -> torch.Tensor:
    """Sum ``values (..., *S)`` over the samples of each shell given by ``shells`` (shape ``S``).

    Returns ``(..., n_shells)``; samples with ``shells >= n_shells`` are dropped. One pass
    (``index_add``), differentiable, batched over leading dims; real or complex values.
    """
    flat_shells = shells.reshape(-1)
    keep = flat_shells < n_shells
    batch = values.shape[: values.ndim - shells.ndim]
    flat_values = values.reshape(*batch, -1)
    if not holds(keep.all()):
        flat_values = flat_values[..., keep]
        flat_shells = flat_shells[keep]
    out = torch.zeros(*batch, n_shells, dtype=values.dtype, device=values.device)
    return out.index_add(-1, flat_shells, flat_values)
