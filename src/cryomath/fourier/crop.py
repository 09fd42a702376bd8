"""Fourier cropping and padding: band-limited resampling of images, stacks and maps.

Cropping the centred spectrum downsamples (the voxel grows by ``N_in / N_out``); zero padding
it upsamples. The real-space centre ``N // 2`` stays on the same physical point, and values
keep their amplitude (a constant map stays the same constant). The full complex spectrum is
used so that the even-size Nyquist samples are split or folded symmetrically (the real part of
the inverse is the Hermitian projection).
"""

import math
from collections.abc import Sequence

import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd


def crop_or_pad(x: torch.Tensor, output_shape: Sequence[int]) -> torch.Tensor:
    """Crop or zero-pad the last ``len(output_shape)`` axes of ``x`` around index ``N // 2``
    (which stays at ``N_out // 2``); real or complex, any dtype."""
    output_shape = tuple(int(n) for n in output_shape)
    ndim = len(output_shape)
    lead = math.prod(x.shape[: x.ndim - ndim])
    check_memory(lead * math.prod(output_shape) * x.element_size(),
                 f"an array of {output_shape}", x.device)  # fmt: skip
    out = x.new_zeros((*x.shape[: x.ndim - ndim], *output_shape))
    src, dst = [], []
    for n_in, n_out in zip(x.shape[x.ndim - ndim :], output_shape, strict=True):
        m = min(n_in, n_out)
        start_in, start_out = n_in // 2 - m // 2, n_out // 2 - m // 2
        src.append(slice(start_in, start_in + m))
        dst.append(slice(start_out, start_out + m))
    out[(..., *dst)] = x[(..., *src)]
    return out


def fourier_resize(x: torch.Tensor, output_shape: Sequence[int]) -> torch.Tensor:
    """Resample the last ``len(output_shape)`` axes of ``x`` by Fourier crop/pad.

    ``x`` is real, ``(..., [z,] y, x)``, centred at ``N // 2``; each axis may shrink or grow
    independently. Differentiable; dtype and device follow ``x``.
    """
    output_shape = tuple(int(n) for n in output_shape)
    ndim = len(output_shape)
    if ndim == 0 or x.ndim < ndim or min(output_shape) < 1:
        raise InvalidInputError(
            f"cannot resize an array of shape {tuple(x.shape)} to {output_shape}"
        )
    input_shape = tuple(x.shape[-ndim:])
    if input_shape == output_shape:
        return x
    out = crop_or_pad(fft_nd(x, ndim, rfft=False, fftshift=True), output_shape)
    scale = 1.0
    for n_in, n_out in zip(input_shape, output_shape, strict=True):
        scale *= n_out / n_in
    return ifft_nd(out, output_shape, rfft=False, fftshift=True) * scale


def rescale(
    x: torch.Tensor,
    ndim: int,
    voxel_size_angstrom: float,
    new_voxel_size_angstrom: float,
) -> tuple[torch.Tensor, float]:
    """Resample to (close to) ``new_voxel_size_angstrom``; returns ``(array, actual voxel size)``.

    The new box is ``round(N * voxel / new_voxel)`` per axis; the voxel size actually reached is
    ``voxel * N_in / N_out`` of the first resampled axis (exact for square/cubic boxes).
    """
    if voxel_size_angstrom <= 0 or new_voxel_size_angstrom <= 0:
        raise InvalidInputError("voxel sizes must be positive")
    shape = tuple(x.shape[-ndim:])
    factor = voxel_size_angstrom / new_voxel_size_angstrom
    new_shape = tuple(max(1, round(n * factor)) for n in shape)
    # the resampled array and its transforms: about six copies
    what = f"resampling to {new_voxel_size_angstrom:g} A ({new_shape})"
    check_memory(6 * math.prod(new_shape) * x.element_size(), what, x.device)
    return fourier_resize(x, new_shape), voxel_size_angstrom * shape[-1] / new_shape[-1]


def box_corners(positions_px: torch.Tensor, box: int, image_shape: tuple[int, int]) -> torch.Tensor:
    """``(P, 2)`` the integer top-left corners (x, y) of ``box``-pixel boxes centred (index
    ``box // 2``) at the rounded ``positions_px (P, 2)`` (x, y) of an ``image_shape (h, w)``
    image; raises if one does not lie inside."""
    h, w = image_shape
    corner = positions_px.round().long() - box // 2
    inside = (corner >= 0).all(1) & (corner[:, 0] + box <= w) & (corner[:, 1] + box <= h)
    if not bool(inside.all()):
        raise InvalidInputError(f"every {box}-pixel box must lie inside the {w}x{h} image")
    return corner
