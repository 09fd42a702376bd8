"""Sub-pixel translation by Fourier phase shift.

A shift ``s = (sx, sy[, sz])`` in pixels moves the content towards +x, +y, +z:
``out(r) = in(r - s)``, i.e. the spectrum is multiplied by ``exp(-2 pi i k . s)``
(k in cycles/pixel). Shifts are periodic (content leaving one edge enters the other).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid


def phase_ramp(
    image_shape: tuple[int, ...],
    shifts_px: torch.Tensor,
    *,
    rfft: bool = True,
    fftshift: bool = False,
) -> torch.Tensor:
    """``exp(-2 pi i k . s)`` on the Fourier grid of ``image_shape``.

    ``shifts_px`` is ``(..., ndim)`` in ``(x, y[, z])`` order; returns ``(..., *fourier_shape)``
    in the complex dtype matching ``shifts_px``. The ramp is the product of one factor per axis;
    at the Nyquist sample of an even axis the factor is ``cos(pi s)``, the Hermitian (real)
    choice, so a sub-pixel shift of a real array is its trigonometric interpolant.
    """
    ndim = len(image_shape)
    if shifts_px.shape[-1] != ndim:
        raise InvalidInputError(f"shifts must be (..., {ndim}), got {tuple(shifts_px.shape)}")
    # separable: one 1-D factor per axis (x, y[, z]), broadcast over the others
    ramp = None
    for axis in range(ndim):
        n = image_shape[ndim - 1 - axis]
        rfft_axis = rfft and axis == 0
        grid = fftfreq_grid((n,), rfft=rfft_axis, fftshift=fftshift and not rfft_axis,
                            device=shifts_px.device, dtype=shifts_px.dtype)[:, 0]  # fmt: skip
        angle = -2 * torch.pi * grid * shifts_px[..., axis : axis + 1]  # (..., n)
        factor = torch.where(
            grid.abs() == 0.5,
            torch.complex(torch.cos(angle), torch.zeros_like(angle)),
            torch.polar(torch.ones_like(angle), angle),
        )
        size = grid.shape[0]
        factor = factor.reshape(*factor.shape[:-1], *([1] * (ndim - 1 - axis)), size, *([1] * axis))
        ramp = factor if ramp is None else ramp * factor
    return ramp


def shift_nd(x: torch.Tensor, shifts_px: torch.Tensor, ndim: int) -> torch.Tensor:
    """Translate the last ``ndim`` axes of real ``x`` by ``shifts_px (..., ndim)`` pixels."""
    shifts_px = torch.as_tensor(shifts_px, dtype=x.dtype, device=x.device)
    image_shape = tuple(x.shape[-ndim:])
    f = fft_nd(x, ndim, rfft=True) * phase_ramp(image_shape, shifts_px, rfft=True)
    return ifft_nd(f, image_shape, rfft=True)


def shift_2d(images: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate ``(..., h, w)`` images by ``(..., 2)`` shifts ``(sx, sy)`` in pixels."""
    return shift_nd(images, shifts_px, 2)


def shift_3d(volumes: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate ``(..., d, h, w)`` volumes by ``(..., 3)`` shifts ``(sx, sy, sz)`` in pixels."""
    return shift_nd(volumes, shifts_px, 3)
