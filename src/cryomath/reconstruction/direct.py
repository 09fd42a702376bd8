"""Direct Fourier inversion: ``V = F^-1[ sum CTF X / (sum CTF^2 + regularisation) ]`` over the
padded rfft volume, then the gridding correction ``/ sinc^2(x / n_pad)`` of the trilinear
insertion kernel (as RELION's ``griddingCorrect``) and a crop to the original box.

Regularisation (Wiener-type): ``None`` (plain division where weights > 0), a constant
``prior_weight`` added to the weights (the prior counts as that many unit-CTF observations per
voxel: a regulariser, not the images' noise SNR), or per shell from a half-map FSC as RELION
does:
``SSNR = FSC' / (1 - FSC')`` with ``FSC' = 2 FSC / (1 + FSC)`` and the term
``mean(weights in shell) / SSNR``.
"""

from collections.abc import Callable

import numpy as np
import torch

from cryomath.ctf import CTF
from cryomath.devices import resolve_device
from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import shell_sum
from cryomath.imaging import (
    Ewald,
    FourierAccumulator,
    ParticleBatch,
    insert_spectra,
    iter_batches,
)
from cryomath.projection import gridding_correction
from cryomath.reconstruction.halves import HalfMaps
from cryomath.resolution import fourier_shell_correlation
from cryomath.so3 import Symmetry, as_point_group


def volume_from_padded_spectrum(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """The ``(n, n, n)`` map of a spectrum on an accumulator's padded grid ``(n_pad, n_pad,
    n_pad // 2 + 1)`` (what :func:`invert` does to ``data / weights``): inverse transform,
    crop, gridding correction."""
    n_pad = spectrum.shape[0]
    padded = ifft_nd(spectrum, (n_pad, n_pad, n_pad), rfft=True, fftshift=True)
    start = n_pad // 2 - n // 2
    volume = padded[start : start + n, start : start + n, start : start + n]
    return volume / gridding_correction(n, n_pad, "trilinear", volume.dtype, volume.device)


def padded_spectrum_of_volume(volume: torch.Tensor, n_pad: int) -> torch.Tensor:
    """The inverse of :func:`volume_from_padded_spectrum`: ``volume (n, n, n)`` on an
    accumulator's padded grid, where ``data / weights`` of its exact projections lie."""
    n = volume.shape[-1]
    v = volume * gridding_correction(n, n_pad, "trilinear", volume.dtype, volume.device)
    before = n_pad // 2 - n // 2
    v = torch.nn.functional.pad(v, (before, n_pad - n - before) * 3)
    return fft_nd(v, 3, rfft=True, fftshift=True)


def invert(
    acc: FourierAccumulator,
    prior_weight: float | None = None,
    half_map_fsc: torch.Tensor | None = None,
    mask_radius_px: float | None = -1,
    tau2_fudge: float = 1.0,
) -> torch.Tensor:
    """The ``(n, n, n)`` map from accumulated sums, multiplied by a spherical mask of
    ``mask_radius_px`` (default -1: ``n / 2``) with a 3-pixel raised-cosine edge outward, as
    RELION's ``softMaskOutsideMap`` (the corners hold only noise); ``None``: no mask.
    With ``half_map_fsc`` each shell's weights get ``mean weight / (T SSNR)``, the SSNR of the
    full set from the FSC and ``T`` RELION's ``--tau2_fudge`` (the signal power's multiplier:
    above 1 trusts the data more)."""
    if mask_radius_px is not None and mask_radius_px < 0:
        mask_radius_px = acc.n / 2
    weights = acc.weights
    if half_map_fsc is not None:
        shells = acc.shells()
        n_shells = len(half_map_fsc)
        mean_w = shell_sum(weights, shells, n_shells) / shell_sum(
            torch.ones_like(weights), shells, n_shells
        ).clamp(min=1)
        fsc = half_map_fsc.to(weights.dtype).clamp(1e-3, 0.999)
        full = 2 * fsc / (1 + fsc)
        ssnr = full / (1 - full)
        table = torch.cat([mean_w / (tau2_fudge * ssnr), weights.new_full((1,), float("inf"))])
        weights = weights + table[shells.clamp(max=n_shells)]
    elif prior_weight is not None:
        weights = weights + prior_weight
    sampled = weights > 0
    ratio = torch.where(sampled, acc.data / torch.where(sampled, weights, 1), 0)
    if acc.n_pad % 2 == 0:
        # the padded Nyquist planes have no Friedel/symmetry mates in an even grid: dropping
        # them (beyond the 0.5 cycles/pixel of the images anyway) keeps symmetric maps exact
        ratio[0], ratio[:, 0], ratio[..., -1] = 0, 0, 0
    volume = volume_from_padded_spectrum(ratio, acc.n)
    n = acc.n
    if mask_radius_px is None:
        return volume
    mask = spherical_mask((n, n, n), mask_radius_px, 3.0, dtype=volume.dtype, device=volume.device)
    return volume * mask


def reconstruct(
    images: torch.Tensor,
    rotations: torch.Tensor,
    pixel_size_angstrom: float,
    shifts_px: torch.Tensor | None = None,
    ctf: CTF | None = None,
    pad_factor: float = 2.0,
    symmetry: Symmetry = None,
    prior_weight: float | None = 1.0,
    ewald: Ewald | None = None,
) -> torch.Tensor:
    """Direct Fourier inversion of in-memory ``(P, n, n)`` images at poses ``(P, 3, 3)``;
    ``symmetry`` (a point-group name or its operators) inserts every image at ``A g`` for each
    operator g; ``ewald``: onto the two curved side-bands (``imaging.ewald``)."""
    batch = ParticleBatch.from_tensors(images, rotations, pixel_size_angstrom, shifts_px, ctf)
    acc = FourierAccumulator(images.shape[-1], pad_factor, images.dtype, images.device)
    insert_particles(acc, batch, symmetry, ewald)
    return invert(acc, prior_weight)


def insert_particles(acc: FourierAccumulator, batch: ParticleBatch, symmetry: Symmetry = None,
                     ewald: Ewald | None = None):  # fmt: skip
    """Insert the images of ``batch`` at their poses (with a ``symmetry``: at every ``A g``)
    into ``acc`` (``imaging.insert_spectra``; ``ewald``: onto curved side-bands)."""
    if not holds(torch.isfinite(torch.view_as_real(batch.spectra)).all()):
        raise InvalidInputError("images contain NaN or inf")
    rotations = batch.rotations
    group = as_point_group(symmetry, rotations.dtype, rotations.device)
    if len(group) > 1:
        rotations = rotations[:, None] @ group
    insert_spectra(acc, batch.spectra, batch, rotations, ewald=ewald)


def volume_grid(table) -> tuple[int, float]:
    """The box and voxel size of a map reconstructed from ``table``: those of its first
    particle's optics group (images of other pixel sizes and boxes are inserted at the
    frequencies they sample)."""
    table.require("pixel_size_angstrom", purpose="reconstruction")
    if table.image_size is not None:
        n = int(table.image_size[0])
    else:
        n = table.read_images([0]).shape[-1]
    return n, float(table.pixel_size_angstrom[0])


def accumulate_halves(
    table,
    subset: np.ndarray,
    pad_factor: float = 2.0,
    symmetry: Symmetry = None,
    batch_size: int = 256,
    use_ctf: bool = True,
    dtype=torch.float64,
    device: str | torch.device | None = None,
    progress: Callable[[int], None] | None = None,
    grid: tuple[int, float] | None = None,
    ewald: Ewald | None = None,
) -> dict[int, FourierAccumulator]:
    """The Fourier sums of both halves (``subset (table.n,)`` in {1, 2}) of the particles of
    ``table``, read in batches of ``batch_size`` (``imaging.iter_batches``) and made on
    ``device`` (memory: the two accumulators and one batch), for a map of ``grid`` = (box,
    voxel size) (default ``volume_grid(table)``). Partial sums of disjoint particle sets add up
    (``merge_halves``) to the sums of all. ``ewald``: onto curved side-bands (``imaging.ewald``)."""
    n, voxel = volume_grid(table) if grid is None else grid
    halves = {
        h: FourierAccumulator(n, pad_factor, dtype, resolve_device(device), voxel) for h in (1, 2)
    }
    for batch in iter_batches(table, batch_size, device, dtype, use_ctf=use_ctf):
        half = torch.as_tensor(subset[batch.indices.cpu().numpy()], device=batch.device)
        for h in (1, 2):
            pick = half == h
            if holds(pick.any()):
                insert_particles(halves[h], batch.subset(pick), symmetry, ewald)
        if progress is not None:
            progress(len(batch))
    return halves


def maps_from_halves(halves: dict[int, FourierAccumulator], prior_weight: float = 1.0) -> HalfMaps:
    """Half maps (each regularised by ``prior_weight`` added to the weights: the prior counts
    as that many unit-CTF observations per voxel), their FSC, and the full map from the summed
    sums regularised per shell from that FSC (RELION's rule). ``halves[1]`` is consumed (it
    becomes the full sums)."""
    voxel = halves[1].voxel_size_angstrom or 1.0
    half1 = invert(halves[1], prior_weight=prior_weight)
    half2 = invert(halves[2], prior_weight=prior_weight)
    curve = fourier_shell_correlation(half1, half2, voxel)
    full_acc = halves[1]
    full_acc.merge(halves[2])
    return HalfMaps(half1, half2, invert(full_acc, half_map_fsc=curve.fsc), curve, voxel)
