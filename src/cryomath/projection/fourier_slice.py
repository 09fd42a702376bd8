"""Fourier-slice projection: central slices of the padded 3-D transform of a volume.

Layout and conventions (docs/conventions.md):
- ``volume (..., n, n, n)`` is (z, y, x), real, cubic, odd or even; the centre is ``n // 2``.
- ``rotations (..., 3, 3)`` are RELION's A: the slice of a particle at image frequency
  ``(kx, ky)`` samples the volume's transform at ``A^T (kx, ky, 0) = kx A[0] + ky A[1]``.
- The result is the projection ``sum_z V(A^T r)`` in voxel units (the real-space reference
  projector's amplitude), ``(..., n, n)``.
- ``shifts_px (..., 2)`` move each image's content by ``(sx, sy)`` pixels after projection
  (``fourier.shift`` convention); RELION 3.1's origins are ``shifts_px = -origin / pixel``.

Steps: (1) optionally subtract the mean of the voxels on the box's faces, so that zero padding
adds no step; (2) gridding correction: divide by the real-space image of the interpolation
kernel, ``sinc^2(x / n_pad)`` per axis for trilinear, ``sinc(x / n_pad)`` for nearest (separable,
in real space); (3) zero-pad to ``pad_factor * n`` around the same centre; (4) rfft, with z and y
fft-shifted so the zero frequency sits at ``n_pad // 2``; (5) sample each slice by trilinear
interpolation (``grid_sample``), using Friedel symmetry ``F(-k) = conj F(k)`` for points with
``kx < 0``; samples beyond the Nyquist radius 0.5 cycles/pixel are zero (as RELION's
projector); ``interpolation="cubic"`` is the higher-order option: cubic B-spline kernel
(8 trilinear fetches, sinc^4 correction), ~100x more accurate at padding 2, ~8x slower;
(6) shift by phase ramps and inverse rfft. Gradients flow to the volume, the rotations and
the shifts. Work is chunked over poses so memory stays bounded.

``ewald_curvature``: an optional curved (Ewald-sphere) slice: the slice is sampled at
``A^T (kx, ky, c |k|^2)`` with ``c = wavelength / (2 * pixel_size)`` in cycles/pixel units
(one side of the sphere; ``c = 0`` is the central slice).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.fft import complex_dtype, fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid, grid_sample_3d, grid_sample_coordinates
from cryomath.projection.compiled import padded_spectrum, sample_slices
from cryomath.so3.checks import check_rotation_matrices

INTERPOLATIONS = ("trilinear", "nearest", "cubic")


@dataclass
class VolumeSpectrum:
    """A volume prepared for slicing: ``data (B, 2, n_pad, n_pad, n_pad // 2 + 1 + x_offset)``
    holds the real and imaginary parts of the rfft (z, y fft-shifted; for ``cubic`` one Friedel
    plane at kx = -1 first, ``x_offset = 1``); ``n`` the original box; ``voxel_size_angstrom``
    the map's voxel size when known (images of another pixel size are sliced at the frequencies
    they sample: ``imaging``)."""

    data: torch.Tensor
    n: int
    n_pad: int
    interpolation: str
    batch_shape: tuple[int, ...]
    x_offset: int = 0
    voxel_size_angstrom: float | None = None


def _check_volume(volume: torch.Tensor) -> int:
    n = volume.shape[-1]
    if volume.ndim < 3 or tuple(volume.shape[-3:]) != (n, n, n):
        raise InvalidInputError(f"volumes must be (..., n, n, n), got {tuple(volume.shape)}")
    if volume.is_complex() or not volume.is_floating_point():
        raise InvalidInputError(f"volumes must be real floating point, got {volume.dtype}")
    if not holds(torch.isfinite(volume).all()):
        raise InvalidInputError("the volume contains NaN or inf")
    return n


def edge_mean(volume: torch.Tensor) -> torch.Tensor:
    """Mean of the voxels on the six faces of each ``(..., n, n, n)`` volume: ``(...)``."""
    inner = volume[..., 1:-1, 1:-1, 1:-1]
    n = volume.shape[-1]
    total = volume.sum((-1, -2, -3)) - inner.sum((-1, -2, -3))
    return total / (n**3 - max(n - 2, 0) ** 3)


def gridding_correction(n: int, n_pad: int, interpolation: str, dtype, device) -> torch.Tensor:
    """``(n, n, n)`` separable correction to divide a volume by before padding: the real-space
    image of the interpolation kernel on the padded grid (sinc nearest, sinc^2 trilinear,
    sinc^4 cubic B-spline)."""
    x = (torch.arange(n, dtype=dtype, device=device) - n // 2) / n_pad
    power = {"trilinear": 2, "nearest": 1, "cubic": 4}[interpolation]
    s = torch.sinc(x) ** power
    return s[:, None, None] * s[None, :, None] * s[None, None, :]


def prepare_volume(
    volume: torch.Tensor,
    pad_factor: float = 2.0,
    interpolation: str = "trilinear",
    subtract_edge_mean: bool = False,
    voxel_size_angstrom: float | None = None,
) -> VolumeSpectrum:
    """Steps 1-4 above for ``volume (..., n, n, n)``, done once per volume and reused for any
    number of slices; ``voxel_size_angstrom`` is recorded for the imaging layer."""
    n = _check_volume(volume)
    if interpolation not in INTERPOLATIONS:
        raise InvalidInputError(f"interpolation must be one of {INTERPOLATIONS}")
    if pad_factor < 1:
        raise InvalidInputError(f"pad_factor must be >= 1, got {pad_factor}")
    n_pad = round(n * pad_factor)
    batch = tuple(volume.shape[:-3])
    # the padded volume, its transform and the two-channel copy: about four padded volumes
    count = math.prod(batch) * n_pad**3
    check_memory(4 * count * volume.element_size(), f"a volume padded to {n_pad}^3", volume.device)
    v = volume.reshape(-1, n, n, n)
    if subtract_edge_mean:
        v = v - edge_mean(v)[:, None, None, None]
    v = v / gridding_correction(n, n_pad, interpolation, v.dtype, v.device)
    before = n_pad // 2 - n // 2
    after = n_pad - n - before
    v = F.pad(v, (before, after) * 3)
    f = fft_nd(v, 3, rfft=True, fftshift=True)  # (B, n_pad, n_pad, n_pad // 2 + 1)
    # real and imaginary parts as two channels, stored channels-last: both parts of a voxel
    # are adjacent in memory, which grid_sample reads ~15 % faster
    data = torch.stack([f.real, f.imag], 1)
    x_offset = 0
    if interpolation == "cubic":  # the 4-tap kernel reaches kx = -1: add it, F(-k) = conj F(k)
        mirror = (2 * (n_pad // 2) - torch.arange(n_pad, device=v.device)) % n_pad
        ghost = (
            data[..., 1][:, :, mirror][:, :, :, mirror]
            * data.new_tensor([1.0, -1.0])[:, None, None]
        )
        data = torch.cat([ghost[..., None], data], -1)
        x_offset = 1
    data = data.contiguous(memory_format=torch.channels_last_3d)
    return VolumeSpectrum(data, n, n_pad, interpolation, batch, x_offset, voxel_size_angstrom)


def slice_coordinates(
    rotations: torch.Tensor,
    frequencies: torch.Tensor,
    n_pad: int,
    ewald_curvature: float = 0.0,
    x_offset: int = 0,
    frequency_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where image samples at ``frequencies (S, 2)`` (``(kx, ky)``, cycles/pixel; usually
    :func:`nyquist_samples`) fall in a padded volume spectrum.

    Returns the array indices ``(x, y, z)`` ``(..., S, 3)`` into the
    ``(n_pad, n_pad, n_pad // 2 + 1 + x_offset)`` spectrum of every sample (after the Friedel
    flip) and the Friedel sign ``(..., S)``. ``rotations (..., 3, 3)`` are RELION's A.
    ``frequency_scale`` = volume voxel size / image pixel size: an image frequency of ``k``
    cycles/pixel is ``k * frequency_scale`` cycles/voxel of the volume."""
    dtype, device = rotations.dtype, rotations.device
    k = frequencies.to(dtype)
    # p = A^T k = kx A[0] + ky A[1] (+ kz A[2]); index = p * n_pad + offset
    rows = rotations[..., None, :, :] * (n_pad * frequency_scale)  # (..., 1, 3, 3)
    q = k[..., 0:1] * rows[..., 0, :]
    q = q + k[..., 1:2] * rows[..., 1, :]
    if ewald_curvature:
        q = q + (ewald_curvature * (k * k).sum(-1, keepdim=True)) * rows[..., 2, :]
    sign = torch.where(q[..., :1] < 0, -1.0, 1.0).to(dtype)
    offset = torch.tensor([x_offset, n_pad // 2, n_pad // 2], dtype=dtype, device=device)
    return torch.addcmul(offset, q, sign), sign[..., 0]


def _sample_cubic(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline interpolation as 8 trilinear fetches (Sigg & Hadwiger, GPU Gems 2, 2005)."""
    base = torch.floor(index)
    t = index - base
    w0, w3 = (1 - t) ** 3 / 6, t**3 / 6
    w1 = (3 * t**3 - 6 * t**2 + 4) / 6
    w2 = 1 - w0 - w1 - w3
    g = (w0 + w1, w2 + w3)
    h = (base - 1 + w1 / g[0], base + 1 + w3 / g[1])
    total = 0
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                position = torch.stack([h[a][..., 0], h[b][..., 1], h[c][..., 2]], -1)
                weight = g[a][..., 0] * g[b][..., 1] * g[c][..., 2]
                grid = grid_sample_coordinates(position, data.shape[-3:])
                fetched = grid_sample_3d(data, grid)
                total = total + fetched * weight[:, None]
    return total


def extract_central_slices_rfft_3d(
    spectrum: VolumeSpectrum,
    rotations: torch.Tensor,
    ewald_curvature: float = 0.0,
    chunk_size: int = 128,
    image_size: int | None = None,
    frequency_scale: float = 1.0,
    compiled: bool = False,
    max_shell: int | None = None,
) -> torch.Tensor:
    """Complex rfft slices ``(*batch, P..., n, n // 2 + 1)`` of a prepared volume at
    ``rotations (*batch, P..., 3, 3)`` (the volume batch dims lead; size-1 dims broadcast).
    ``n`` is ``image_size`` (default: the volume's box); ``frequency_scale`` as in
    :func:`slice_coordinates`. ``compiled``: trilinear central slices through one compiled
    kernel (:mod:`cryomath.projection.compiled`: faster once compiled; the first call for a
    shape compiles for seconds). ``max_shell``: the samples beyond that shell are left zero
    (a band-limited search: less to interpolate)."""
    n = image_size or spectrum.n
    r, pose_shape = _poses(spectrum, rotations, chunk_size)
    k, keep = nyquist_samples(n, frequency_scale, r.dtype, r.device, max_shell)
    sample = _chunk_sampler(spectrum, k, ewald_curvature, frequency_scale, compiled, chunk_size)
    # filled chunk by chunk: a global search's table (up to GBs) is held once, not twice
    slices = torch.zeros((r.shape[0], r.shape[1], n * (n // 2 + 1)), device=spectrum.data.device,
                         dtype=complex_dtype(spectrum.data.dtype))  # fmt: skip
    for start in range(0, r.shape[1], chunk_size):
        chunk = r[:, start : start + chunk_size]
        slices[:, start : start + chunk.shape[1]].index_copy_(-1, keep, sample(chunk))
    return slices.reshape(*spectrum.batch_shape, *pose_shape, n, n // 2 + 1)


def extract_samples_rfft_3d(
    spectrum: VolumeSpectrum,
    rotations: torch.Tensor,
    frequencies: torch.Tensor,
    ewald_curvature: float = 0.0,
    chunk_size: int = 128,
    frequency_scale: float = 1.0,
    compiled: bool = False,
) -> torch.Tensor:
    """The complex values ``(*batch, P..., K)`` of :func:`extract_central_slices_rfft_3d`'s
    slices at the image frequencies ``frequencies (K, 2)`` ``(kx, ky)`` in cycles per image
    pixel (inside both Nyquist circles, e.g. a band's), without the rest of the rfft grid: the
    adjoint of :func:`~cryomath.projection.accumulate_samples_rfft_3d`. The other arguments as
    in :func:`extract_central_slices_rfft_3d`."""
    r, pose_shape = _poses(spectrum, rotations, chunk_size)
    if frequencies.ndim != 2 or frequencies.shape[-1] != 2:
        raise InvalidInputError(f"frequencies must be (K, 2), got {tuple(frequencies.shape)}")
    k = frequencies.to(r.device, r.dtype)
    sample = _chunk_sampler(spectrum, k, ewald_curvature, frequency_scale, compiled, chunk_size)
    out = torch.empty((r.shape[0], r.shape[1], len(k)), device=spectrum.data.device,
                      dtype=complex_dtype(spectrum.data.dtype))  # fmt: skip
    for start in range(0, r.shape[1], chunk_size):
        chunk = r[:, start : start + chunk_size]
        out[:, start : start + chunk.shape[1]] = sample(chunk)
    return out.reshape(*spectrum.batch_shape, *pose_shape, len(k))


def _poses(spectrum: VolumeSpectrum, rotations: torch.Tensor, chunk_size: int):
    """``rotations`` checked against the volume batch and flattened to ``(B, P, 3, 3)`` in
    the volume's dtype, and their pose shape ``P...``."""
    nb = len(spectrum.batch_shape)
    if tuple(rotations.shape[-2:]) != (3, 3):
        raise InvalidInputError(f"rotations must be (..., 3, 3), got {tuple(rotations.shape)}")
    lead = spectrum.batch_shape
    given = rotations.shape[:nb] if rotations.ndim >= nb + 2 else None
    if given is None or any(r not in (1, v) for r, v in zip(given, lead, strict=True)):
        raise InvalidInputError(
            f"rotations' leading dims {tuple(rotations.shape[:nb])} do not match the volume "
            f"batch {spectrum.batch_shape}"
        )
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    check_rotation_matrices(rotations)
    rotations = rotations.expand(*lead, *rotations.shape[nb:]).to(spectrum.data.dtype)
    return rotations.reshape(spectrum.data.shape[0], -1, 3, 3), rotations.shape[nb:-2]


def _chunk_sampler(spectrum, k, ewald_curvature, frequency_scale, compiled, chunk_size):
    """The function from a chunk of rotations ``(B, Pc, 3, 3)`` to its complex samples ``(B,
    Pc, K)`` at the frequencies ``k``: the compiled kernel or ``grid_sample``."""
    if compiled and spectrum.interpolation == "trilinear" and not ewald_curvature:
        padded = [padded_spectrum(d) for d in spectrum.data]
        return lambda chunk: _compiled_chunk(padded, chunk, k, spectrum.n_pad, frequency_scale,
                                             chunk_size)  # fmt: skip
    return lambda chunk: _sampled_chunk(spectrum, chunk, k, ewald_curvature, frequency_scale)


def _sampled_chunk(spectrum, rotations, k, ewald_curvature, frequency_scale) -> torch.Tensor:
    """``(B, Pc, K)`` complex samples of one chunk through ``grid_sample`` (the eager path)."""
    index, sign = slice_coordinates(
        rotations, k, spectrum.n_pad, ewald_curvature, spectrum.x_offset, frequency_scale
    )  # (B, Pc, K, 3): the samples inside the Nyquist circle only
    index = index[..., None, :]  # grid_sample's (B, Pc, K, 1, 3)
    if spectrum.interpolation == "cubic":
        values = _sample_cubic(spectrum.data, index)
    else:
        mode = "bilinear" if spectrum.interpolation == "trilinear" else "nearest"
        grid = grid_sample_coordinates(index, spectrum.data.shape[-3:])
        values = grid_sample_3d(spectrum.data, grid, mode)  # (B, 2, Pc, K, 1)
    return torch.complex(values[:, 0, ..., 0], values[:, 1, ..., 0] * sign)


def _compiled_chunk(padded, rotations, k, n_pad, frequency_scale, chunk_size) -> torch.Tensor:
    """``(B, Pc, K)`` complex samples of one chunk through the compiled kernel; a short last
    chunk is padded with identities so that every call has one shape (one compilation)."""
    p = rotations.shape[1]
    if p < chunk_size:
        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        rotations = torch.cat([rotations, eye.expand(rotations.shape[0], chunk_size - p, 3, 3)], 1)
    values = torch.stack([
        sample_slices(volume, r, k, float(n_pad * frequency_scale), float(n_pad // 2))
        for volume, r in zip(padded, rotations, strict=True)
    ])[:, :p]  # fmt: skip
    return torch.view_as_complex(values.contiguous())


def inside_nyquist(frequencies: torch.Tensor, frequency_scale: float = 1.0) -> torch.Tensor:
    """Whether each image frequency ``(..., 2)`` ``(kx, ky)`` (cycles per pixel) is inside both
    the image's Nyquist circle and the volume's (``frequency_scale`` = volume voxel size /
    image pixel size)."""
    return (frequencies * frequencies).sum(-1) <= 0.25 * min(1.0, frequency_scale**-2)


def nyquist_samples(
    n: int, frequency_scale: float, dtype: torch.dtype, device, max_shell: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frequencies ``(K, 2)`` ``(kx, ky)`` of the rfft samples of ``n``-pixel images inside
    both the image's and the volume's Nyquist circle, and their flat indices ``(K,)`` in the
    ``(n, n // 2 + 1)`` grid: the only samples slicing and insertion touch (the rest, a fifth,
    are zero). ``max_shell``: only the shells up to it (``fourier.shell_index``; a band-limited
    search needs no more). Found on the host (the set depends only on ``n``), returned on
    ``device``."""
    k = fftfreq_grid((n, n), rfft=True, dtype=torch.float64).reshape(-1, 2)
    inside = inside_nyquist(k, frequency_scale)
    if max_shell is not None:
        inside &= torch.round(torch.linalg.vector_norm(k, dim=-1) * n) <= max_shell
    keep = inside.nonzero()[:, 0]
    return k[keep].to(device, dtype), keep.to(device)


def project_fourier(
    volume: torch.Tensor,
    rotations: torch.Tensor,
    shifts_px: torch.Tensor | None = None,
    pad_factor: float = 2.0,
    interpolation: str = "trilinear",
    subtract_edge_mean: bool = False,
    ewald_curvature: float = 0.0,
    chunk_size: int = 128,
) -> torch.Tensor:
    """Projections ``(..., n, n)`` of ``volume (..., n, n, n)`` at ``rotations (..., 3, 3)``,
    shifted by ``shifts_px (..., 2)`` if given (see the module docstring)."""
    spectrum = prepare_volume(volume, pad_factor, interpolation, subtract_edge_mean)
    slices = extract_central_slices_rfft_3d(spectrum, rotations, ewald_curvature, chunk_size)
    n = spectrum.n
    if shifts_px is not None:
        from cryomath.fourier.shift import phase_ramp

        slices = slices * phase_ramp((n, n), shifts_px.to(volume.dtype), rfft=True)
    return ifft_nd(slices, (n, n), rfft=True)
