"""Direct Fourier inversion: ``V = F^-1[ sum CTF X / (sum CTF^2 + regularisation) ]`` over the
padded rfft volume, then the gridding correction ``/ sinc^2(x / n_pad)`` of the trilinear
insertion kernel (as RELION's ``griddingCorrect``) and a crop to the original box.

Regularisation (Wiener-type): ``None`` (plain division where weights > 0), a constant
``1 / snr`` added to the weights, or per shell from a half-map FSC as RELION does:
``SSNR = FSC' / (1 - FSC')`` with ``FSC' = 2 FSC / (1 + FSC)`` and the term
``mean(weights in shell) / SSNR``.
"""

import copy
from collections.abc import Callable

import numpy as np
import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.devices import Staging, device_name
from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import shell_sum
from cryomath.fourier.shift import phase_ramp
from cryomath.projection.fourier_slice import gridding_correction
from cryomath.reconstruction.insertion import FourierAccumulator


def _padded_shells(acc: FourierAccumulator) -> torch.Tensor:
    """Shell of every padded-volume sample in units of the original box (fft-shifted z, y)."""
    n_pad = acc.n_pad
    k = torch.stack(
        torch.meshgrid(
            torch.fft.fftshift(torch.fft.fftfreq(n_pad, dtype=torch.float64)),
            torch.fft.fftshift(torch.fft.fftfreq(n_pad, dtype=torch.float64)),
            torch.fft.rfftfreq(n_pad, dtype=torch.float64),
            indexing="ij",
        ),
        -1,
    )
    return torch.round(torch.linalg.vector_norm(k, dim=-1) * acc.n).long().to(acc.weights.device)


def invert(
    acc: FourierAccumulator,
    snr: float | None = None,
    half_map_fsc: torch.Tensor | None = None,
    mask_radius_px: float | None = -1,
) -> torch.Tensor:
    """The ``(n, n, n)`` map from accumulated sums, multiplied by a spherical mask of
    ``mask_radius_px`` (default -1: ``n / 2``) with a 3-pixel raised-cosine edge outward, as
    RELION's ``softMaskOutsideMap`` (the corners hold only noise); ``None``: no mask."""
    if mask_radius_px is not None and mask_radius_px < 0:
        mask_radius_px = acc.n / 2
    weights = acc.weights
    if half_map_fsc is not None:
        shells = _padded_shells(acc)
        n_shells = len(half_map_fsc)
        mean_w = shell_sum(weights, shells, n_shells) / shell_sum(
            torch.ones_like(weights), shells, n_shells
        ).clamp(min=1)
        fsc = half_map_fsc.to(weights.dtype).clamp(1e-3, 0.999)
        full = 2 * fsc / (1 + fsc)
        ssnr = full / (1 - full)
        table = torch.cat([mean_w / ssnr, weights.new_full((1,), float("inf"))])
        weights = weights + table[shells.clamp(max=n_shells)]
    elif snr is not None:
        weights = weights + 1.0 / snr
    sampled = weights > 0
    ratio = torch.where(sampled, acc.data / torch.where(sampled, weights, 1), 0)
    if acc.n_pad % 2 == 0:
        # the padded Nyquist planes have no Friedel/symmetry mates in an even grid: dropping
        # them (beyond the 0.5 cycles/pixel of the images anyway) keeps symmetric maps exact
        ratio[0], ratio[:, 0], ratio[..., -1] = 0, 0, 0
    n, n_pad = acc.n, acc.n_pad
    padded = ifft_nd(ratio, (n_pad, n_pad, n_pad), rfft=True, fftshift=True)
    start = n_pad // 2 - n // 2
    volume = padded[start : start + n, start : start + n, start : start + n]
    volume = volume / gridding_correction(n, n_pad, "trilinear", volume.dtype, volume.device)
    if mask_radius_px is None:
        return volume
    mask = spherical_mask((n, n, n), mask_radius_px, 3.0, dtype=volume.dtype, device=volume.device)
    return volume * mask


def centred_spectra(images: torch.Tensor, shifts_px: torch.Tensor | None) -> torch.Tensor:
    """rfft spectra of ``(P, n, n)`` images with their shifts undone (content moved by
    ``-shifts_px``)."""
    n = images.shape[-1]
    spectra = fft_nd(images, 2, rfft=True)
    if shifts_px is not None:
        spectra = spectra * phase_ramp((n, n), -shifts_px.to(images.dtype), rfft=True)
    return spectra


def reconstruct(
    images: torch.Tensor,
    rotations: torch.Tensor,
    pixel_size_angstrom: float,
    shifts_px: torch.Tensor | None = None,
    ctf: CTF | None = None,
    pad_factor: float = 2.0,
    symmetry: torch.Tensor | None = None,
    snr: float | None = 1.0,
) -> torch.Tensor:
    """Direct Fourier inversion of in-memory ``(P, n, n)`` images at poses ``(P, 3, 3)``;
    ``symmetry (|G|, 3, 3)`` inserts every image at ``A g`` for each operator g."""
    acc = FourierAccumulator(images.shape[-1], pad_factor, images.dtype, images.device)
    insert_batch(acc, images, rotations, pixel_size_angstrom, shifts_px, ctf, symmetry)
    return invert(acc, snr)


def insert_batch(
    acc: FourierAccumulator,
    images: torch.Tensor,
    rotations: torch.Tensor,
    pixel_size_angstrom: float,
    shifts_px: torch.Tensor | None = None,
    ctf: CTF | None = None,
    symmetry: torch.Tensor | None = None,
) -> None:
    """Insert ``images (P, n, n)`` at ``rotations (P, 3, 3)`` (with ``shifts_px (P, 2)`` and CTFs of
    batch ``(P,)``) into ``acc``."""
    if not holds(torch.isfinite(images).all()):
        raise InvalidInputError("images contain NaN or inf")
    n = images.shape[-1]
    spectra = centred_spectra(images, shifts_px)
    ctf_values = (
        None if ctf is None else compute_ctf(ctf, (n, n), pixel_size_angstrom).to(images.dtype)
    )
    if symmetry is not None and len(symmetry) > 1:
        k = len(symmetry)
        rotations = (rotations[:, None] @ symmetry.to(rotations)).reshape(-1, 3, 3)
        spectra = spectra.repeat_interleave(k, 0)
        ctf_values = None if ctf_values is None else ctf_values.repeat_interleave(k, 0)
    acc.insert(spectra, rotations.to(images.dtype), ctf_values)


def accumulate_halves(
    table,
    subset: np.ndarray,
    pad_factor: float = 2.0,
    symmetry: torch.Tensor | None = None,
    batch_size: int = 256,
    use_ctf: bool = True,
    dtype=torch.float64,
    device: str | torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, FourierAccumulator]:
    """The Fourier sums of both halves (``subset (table.n,)`` in {1, 2}) of the particles of
    ``table``, read in batches of ``batch_size`` and made on ``device`` (memory: the two
    accumulators and one batch). Partial sums of disjoint particle sets add up
    (``merge_halves``) to the sums of all."""
    staging = Staging(device)
    pixel = float(table.pixel_size_angstrom[0])
    n = (
        int(table.image_size[0])
        if table.image_size is not None
        else table.read_images([0]).shape[-1]
    )
    halves = {h: FourierAccumulator(n, pad_factor, dtype, staging.device) for h in (1, 2)}
    for start in range(0, table.n, batch_size):
        sub = table.subset(np.arange(start, min(start + batch_size, table.n)))
        images = staging.to_device(sub.read_images(np.arange(sub.n))).to(dtype)
        shifts = (
            None
            if sub.origins_angstrom is None
            else -staging.to_device(sub.origins_angstrom).to(dtype) / pixel
        )
        ctf = CTF.from_parameters(sub.ctf, dtype=dtype, device=staging.device) if use_ctf else None
        rotations = staging.to_device(sub.rotations).to(dtype)
        for h in (1, 2):
            in_half = subset[start : start + sub.n] == h
            if in_half.any():
                pick = staging.to_device(in_half)
                insert_batch(
                    halves[h], images[pick], rotations[pick], pixel,
                    None if shifts is None else shifts[pick],
                    None if ctf is None else ctf.subset(pick), symmetry,
                )  # fmt: skip
        if progress is not None:
            progress(sub.n)
    return halves


def merge_halves(a: dict, b: dict) -> dict:
    """A new pair of accumulators holding the sums of ``a`` and ``b`` (the reduction step of a
    distributed reconstruction; the inputs are left untouched, so a retried step is safe)."""
    out = copy.deepcopy(a)
    for h in (1, 2):
        out[h].merge(b[h])
    return out


def reconstruct_particles(
    table,
    pad_factor: float = 2.0,
    symmetry: torch.Tensor | None = None,
    batch_size: int = 256,
    use_ctf: bool = True,
    split_seed: int = 0,
    snr: float = 1.0,
    progress: Callable[[int], None] | None = None,
    dtype=torch.float64,
    client=None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Half maps and full map from a :class:`cryomath.io.ParticleTable` whose images are read
    in batches (memory: the accumulators plus one batch). Halves follow ``random_subset`` (1/2)
    or a seeded random split. Half maps are regularised by ``1 / snr`` added to the weights (the
    prior counts as ``1 / snr`` unit-CTF observations per voxel); the full map per shell from the
    half-map FSC.

    ``client``: a ``dask.distributed.Client``: the particles are cut into chunks of
    ``chunk_size`` (default: two per worker), each task returns its partial Fourier sums (two
    padded accumulators), and the sums are added pairwise in a tree; the maps equal the
    single-process ones to float64 rounding.

    ``device``: where the sums are made and the maps returned; with a ``client``, where each
    worker makes its sums (the workers must have it; the sum and the maps are on the CPU)."""
    from cryomath.fsc import fourier_shell_correlation

    if table.n < 2:
        raise InvalidInputError("reconstruction needs at least two particles")
    table.require("rotations", "image_paths", "pixel_size_angstrom", purpose="reconstruction")
    if use_ctf:
        table.require("ctf", purpose="reconstruction with CTF")
    pixel = float(table.pixel_size_angstrom[0])
    if table.random_subset is not None and set(np.unique(table.random_subset)) == {1, 2}:
        subset = np.asarray(table.random_subset)
    else:
        subset = np.random.default_rng(split_seed).permutation(table.n) % 2 + 1
    options = (pad_factor, symmetry, batch_size, use_ctf, dtype, device_name(device, client))
    if client is None:
        halves = accumulate_halves(table, subset, *options, progress=progress)
    else:
        halves = _accumulate_on_dask(client, table, subset, options, chunk_size, progress)
    half1, half2 = invert(halves[1], snr=snr), invert(halves[2], snr=snr)
    curve = fourier_shell_correlation(half1, half2, pixel)
    full_acc = halves[1]
    full_acc.merge(halves[2])
    full = invert(full_acc, half_map_fsc=curve.fsc)
    return {
        "half1": half1,
        "half2": half2,
        "full": full,
        "fsc": curve,
        "pixel_size_angstrom": pixel,
    }


def _chunk_sums(table, subset: np.ndarray, options: tuple) -> dict[int, FourierAccumulator]:
    """A Dask task: the sums of one chunk, made on the worker's device, returned on the CPU (a
    result may be reduced or collected on a machine without that device)."""
    halves = accumulate_halves(table, subset, *options)
    return {h: acc.to("cpu") for h, acc in halves.items()}


def _accumulate_on_dask(client, table, subset, options, chunk_size, progress):
    from dask.distributed import as_completed

    if chunk_size is None:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        chunk_size = max(options[2], -(-table.n // (2 * workers)))
    chunks = [np.arange(s, min(s + chunk_size, table.n)) for s in range(0, table.n, chunk_size)]
    # each task carries its particles' metadata in the graph: scattered data would be lost
    # with a dead worker, and its tasks could not be rerun
    futures = [
        client.submit(_chunk_sums, table.subset(c), subset[c], options, retries=2, pure=False)
        for c in chunks
    ]
    sizes = {f.key: len(c) for f, c in zip(futures, chunks, strict=True)}
    pending = list(futures)
    for future in as_completed(futures):
        if progress is not None:
            progress(sizes[future.key])
    while len(pending) > 1:  # tree reduction: add pairs until one sum is left
        pairs = zip(pending[::2], pending[1::2], strict=False)
        merged = [client.submit(merge_halves, a, b, retries=2, pure=False) for a, b in pairs]
        pending = merged + ([pending[-1]] if len(pending) % 2 else [])
    return pending[0].result()
