"""Centred FFTs of real images and volumes.

Layout (docs/conventions.md, "Fourier layouts"):

* Input arrays are real, ``(..., y, x)`` or ``(..., z, y, x)``, with the real-space origin at
  index ``N // 2`` of each axis (odd and even ``N``); it is moved to index 0 before the transform,
  so a centred symmetric object has a real spectrum.
* ``rfft=True`` keeps the non-negative half of the last (x) axis: ``N // 2 + 1`` samples.
* ``fftshift=False`` leaves the zero frequency at index 0 of every axis; ``fftshift=True`` moves
  it to index ``N // 2`` of every full axis (never of the rfft half axis).
* Normalisation is numpy's "backward": the forward sum is unscaled, the inverse divides by the
  number of samples. Complex dtype follows the input (float32 -> complex64, float64 -> complex128).
"""

import torch


def complex_dtype(real: torch.dtype) -> torch.dtype:
    """The complex dtype of a real one's spectra: float64 -> complex128, else complex64."""
    return torch.complex128 if real == torch.float64 else torch.complex64


def _dims(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def _shifted_dims(ndim: int, rfft: bool) -> tuple[int, ...]:
    return _dims(ndim)[:-1] if rfft else _dims(ndim)


def fft_nd(
    x: torch.Tensor, ndim: int, *, rfft: bool = True, fftshift: bool = False
) -> torch.Tensor:
    """Transform the last ``ndim`` axes of a real, centred array ``(..., [z,] y, x)``: complex
    ``(..., [z,] y, x // 2 + 1)`` (rfft) or full (see module docstring)."""
    dims = _dims(ndim)
    x = torch.fft.ifftshift(x, dim=dims)
    f = torch.fft.rfftn(x, dim=dims) if rfft else torch.fft.fftn(x, dim=dims)
    return torch.fft.fftshift(f, dim=_shifted_dims(ndim, rfft)) if fftshift else f


def ifft_nd(
    f: torch.Tensor,
    image_shape: tuple[int, ...],
    *,
    rfft: bool = True,
    fftshift: bool = False,
) -> torch.Tensor:
    """Inverse of :func:`fft_nd`: a real array of ``image_shape`` with its origin at ``N // 2``.

    For a full (non-rfft) spectrum the real part is returned, i.e. the Hermitian part of ``f``.
    """
    ndim = len(image_shape)
    dims = _dims(ndim)
    if fftshift:
        f = torch.fft.ifftshift(f, dim=_shifted_dims(ndim, rfft))
    if rfft:
        x = torch.fft.irfftn(f, s=tuple(image_shape), dim=dims)
    else:
        x = torch.fft.ifftn(f, dim=dims).real
    return torch.fft.fftshift(x, dim=dims)


def rfft_2d(images: torch.Tensor, fftshift: bool = False) -> torch.Tensor:
    """rfft of ``(..., h, w)`` images centred at ``N // 2``; returns ``(..., h, w // 2 + 1)``."""
    return fft_nd(images, 2, rfft=True, fftshift=fftshift)


def irfft_2d(spectra: torch.Tensor, image_shape: tuple[int, int], fftshift: bool = False):
    """Inverse of :func:`rfft_2d` for images of ``image_shape = (h, w)``."""
    return ifft_nd(spectra, image_shape, rfft=True, fftshift=fftshift)


def rfft_3d(volumes: torch.Tensor, fftshift: bool = False) -> torch.Tensor:
    """rfft of ``(..., d, h, w)`` volumes centred at ``N // 2``; returns ``(..., d, h, w//2+1)``."""
    return fft_nd(volumes, 3, rfft=True, fftshift=fftshift)


def irfft_3d(spectra: torch.Tensor, image_shape: tuple[int, int, int], fftshift: bool = False):
    """Inverse of :func:`rfft_3d` for volumes of ``image_shape = (d, h, w)``."""
    return ifft_nd(spectra, image_shape, rfft=True, fftshift=fftshift)


def fft_2d(images: torch.Tensor, fftshift: bool = True) -> torch.Tensor:
    """Full complex FFT of ``(..., h, w)`` centred images (zero frequency at ``N // 2``)."""
    return fft_nd(images, 2, rfft=False, fftshift=fftshift)


def fft_3d(volumes: torch.Tensor, fftshift: bool = True) -> torch.Tensor:
    """Full complex FFT of ``(..., d, h, w)`` centred volumes (zero frequency at ``N // 2``)."""
    return fft_nd(volumes, 3, rfft=False, fftshift=fftshift)
