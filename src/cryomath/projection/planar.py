"""In-plane rotation of 2-D images in Fourier space and its exact adjoint: the projector and
back-projector of 2-D classification (RELION's 2-D ``Projector``/``BackProjector``).

A 2-D reference ``I (..., n, n)`` is prepared as 3-D volumes are (``fourier_slice``): divided by
the bilinear kernel's real-space image ``sinc^2(x / n_pad) sinc^2(y / n_pad)``, zero-padded to
``n_pad``, rfft with y fft-shifted; its rotated copy at angle ``psi`` samples that spectrum at
``A^T (kx, ky)`` with ``A`` the pose ``Rz(psi)`` in RELION's convention (the upper 2 x 2 block of
``so3.matrix_from_relion_euler((0, 0, psi))``), bilinearly, Friedel-flipped where ``x < 0``,
zero beyond Nyquist. The adjoint spreads samples back with the same weights; ``invert_planar``
divides sums and weights, inverse transforms, crops and undoes the gridding.
"""

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shells import shell_index, shell_sum
from cryomath.projection.fourier_slice import nyquist_samples, slice_coordinates
from cryomath.so3.conventions.relion import matrix_from_relion_euler


def _kernel(n: int, n_pad: int, dtype, device) -> torch.Tensor:
    x = (torch.arange(n, dtype=dtype, device=device) - n // 2) / n_pad
    s = torch.sinc(x) ** 2
    return s[:, None] * s[None, :]


def prepare_images(images: torch.Tensor, pad_factor: float = 2.0) -> torch.Tensor:
    """``(K, 2, n_pad, n_pad // 2 + 1)`` real and imaginary parts of the padded spectra of
    ``images (K, n, n)`` (module docstring)."""
    k, n = images.shape[0], images.shape[-1]
    if images.ndim != 3 or images.shape[-2] != n:
        raise InvalidInputError(f"images must be (K, n, n), got {tuple(images.shape)}")
    n_pad = round(n * pad_factor)
    x = images / _kernel(n, n_pad, images.dtype, images.device)
    before = n_pad // 2 - n // 2
    x = F.pad(x, (before, n_pad - n - before) * 2)
    f = fft_nd(x, 2, rfft=True, fftshift=True)
    return torch.stack([f.real, f.imag], 1).reshape(k, 2, n_pad, n_pad // 2 + 1)


def planar_poses(psi_degrees: torch.Tensor) -> torch.Tensor:
    """``(P, 3, 3)`` RELION poses ``(rot, tilt, psi) = (0, 0, psi)``."""
    zeros = torch.zeros_like(psi_degrees)
    return matrix_from_relion_euler(torch.stack([zeros, zeros, psi_degrees], -1))


def _grid(poses: torch.Tensor, n: int, n_pad: int, dtype, device):
    """grid_sample's coordinates ``(1, P K, 1, 2)`` and Friedel signs ``(P, K)`` of the rfft
    samples inside Nyquist (``nyquist_samples``) at ``poses (P, 3, 3)``."""
    k, keep = nyquist_samples(n, 1.0, dtype, device)
    index, sign = slice_coordinates(poses.to(dtype), k, n_pad)  # (P, K, 3): (x, y, z) indices
    size = torch.tensor([n_pad // 2, n_pad - 1], dtype=dtype, device=device)
    grid = index[..., :2] * (2.0 / size) - 1  # align_corners=True
    return grid.reshape(1, -1, 1, 2), sign, keep


def rotate_spectra_rfft_2d(prepared: torch.Tensor, n: int, psi_degrees: torch.Tensor):
    """``(K, P, n, n // 2 + 1)`` complex rfft spectra of the ``K`` prepared images rotated by
    each of ``psi_degrees (P,)``."""
    kk, _, n_pad, _ = prepared.shape
    grid, sign, keep = _grid(planar_poses(psi_degrees), n, n_pad, prepared.dtype, prepared.device)
    values = F.grid_sample(
        prepared,
        grid.expand(kk, -1, -1, -1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )  # (K, 2, P K', 1)
    values = values[..., 0].unflatten(2, sign.shape)
    inside = torch.complex(values[:, 0], values[:, 1] * sign)
    full = inside.new_zeros((kk, len(psi_degrees), n * (n // 2 + 1)))
    return full.index_copy(2, keep, inside).unflatten(2, (n, n // 2 + 1))


def accumulate_rotated_rfft_2d(
    out: torch.Tensor, spectra: torch.Tensor, weights: torch.Tensor, psi_degrees: torch.Tensor
) -> None:
    """Add the adjoint of :func:`rotate_spectra_rfft_2d` of complex ``spectra (K, P, n,
    n // 2 + 1)`` and of real ``weights`` (same shape) to ``out (K, 3, n_pad, n_pad // 2 + 1)``
    (channels: real and imaginary sums, weights)."""
    kk, n = spectra.shape[0], spectra.shape[2]
    n_pad = out.shape[-2]
    grid, sign, keep = _grid(planar_poses(psi_degrees), n, n_pad, out.dtype, out.device)
    s = spectra.flatten(2)[..., keep]
    w = weights.flatten(2)[..., keep].to(out.dtype)
    values = torch.stack([s.real, s.imag * sign, w], 1).reshape(kk, 3, -1, 1)
    like = out.new_empty(out.shape)
    spread, _ = torch.ops.aten.grid_sampler_2d_backward(
        values.contiguous(), like, grid.expand(kk, -1, -1, -1).contiguous(), 0, 0, True,
        [True, False],
    )  # fmt: skip
    out += spread


def invert_planar(
    sums: torch.Tensor, n: int, frc: torch.Tensor | None = None, tau2_fudge: float = 1.0
) -> torch.Tensor:
    """``(K, n, n)`` images from accumulated ``sums (K, 3, n_pad, n_pad // 2 + 1)``:
    ``data / (weights + tau)``, with ``tau`` per ring from an FRC ``(K, rings)`` as
    ``reconstruction.invert`` does per shell (``mean weight / (T SSNR)``, ``SSNR = FRC' / (1 -
    FRC')``, ``FRC' = 2 FRC / (1 + FRC)``, ``T`` = ``tau2_fudge``), or 1 without one; then
    gridding-corrected and cropped."""
    n_pad = sums.shape[-2]
    weights = sums[:, 2]
    rings = shell_index((n_pad, n_pad), device=sums.device)
    rings = torch.fft.fftshift(rings, 0).mul(n / n_pad).round().long()  # in the images' rings
    if frc is None:
        weights = weights + 1.0
    else:
        count = shell_sum(torch.ones_like(weights[0]), rings, frc.shape[-1]).clamp(min=1)
        mean = shell_sum(weights, rings, frc.shape[-1]) / count
        f = frc.to(weights).clamp(1e-3, 0.999)
        full = 2 * f / (1 + f)
        tau = mean * (1 - full) / (tau2_fudge * full)
        tau = torch.cat([tau, torch.full_like(mean[:, :1], torch.inf)], 1)
        weights = weights + torch.gather(tau, 1, rings.clamp(max=frc.shape[-1]).flatten()[None]
                                         .expand(len(tau), -1)).view_as(weights)  # fmt: skip
    ratio = torch.where(weights > 0, torch.complex(sums[:, 0], sums[:, 1]) / weights, 0)
    ratio[:, 0], ratio[..., -1] = 0, 0  # the padded Nyquist lines have no mates
    padded = ifft_nd(ratio, (n_pad, n_pad), rfft=True, fftshift=True)
    start = n_pad // 2 - n // 2
    images = padded[:, start : start + n, start : start + n]
    return images / _kernel(n, n_pad, images.dtype, images.device)
