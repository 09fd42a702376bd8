"""Direct Fourier inversion of particle files, in one process or over Dask workers: the
particles are split into gold-standard halves, their Fourier sums accumulated batch by batch
(``reconstruction.accumulate_halves``), partial sums of worker chunks added in a tree, and the
maps made from the sums (``reconstruction.maps_from_halves``)."""

import copy
from collections.abc import Callable

import numpy as np
import torch

from cryomath.devices import device_name
from cryomath.errors import InvalidInputError
from cryomath.imaging import Ewald, FourierAccumulator
from cryomath.reconstruction import (
    HalfMaps,
    accumulate_halves,
    half_subsets,
    maps_from_halves,
    volume_grid,
)
from cryomath.so3 import Symmetry


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
    symmetry: Symmetry = None,
    batch_size: int = 256,
    use_ctf: bool = True,
    split_seed: int = 0,
    prior_weight: float = 1.0,
    progress: Callable[[int], None] | None = None,
    dtype=torch.float64,
    client=None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    ewald: Ewald | None = None,
) -> HalfMaps:
    """Half maps and full map from a :class:`cryomath.io.ParticleTable` whose images are read
    in batches (memory: the accumulators plus one batch). Halves follow ``random_subset`` (1/2)
    or a seeded random split. Half maps are regularised by ``prior_weight`` added to the
    weights (the prior counts as that many unit-CTF observations per voxel); the full map per
    shell from the half-map FSC.

    ``client``: a ``dask.distributed.Client``: the particles are cut into chunks of
    ``chunk_size`` (default: two per worker), each task returns its partial Fourier sums (two
    padded accumulators), and the sums are added pairwise in a tree; the maps equal the
    single-process ones to float64 rounding.

    ``device``: where the sums are made and the maps returned; with a ``client``, where each
    worker makes its sums (the workers must have it; the sum and the maps are on the CPU).

    ``ewald``: the images are inserted as two single side-bands on curved slices
    (``imaging.ewald``; ``relion_reconstruct --ewald``)."""
    if table.n < 2:
        raise InvalidInputError("reconstruction needs at least two particles")
    table.require("rotations", "image_paths", "pixel_size_angstrom", purpose="reconstruction")
    if use_ctf:
        table.require("ctf", purpose="reconstruction with CTF")
    grid = volume_grid(table)
    subset = half_subsets(table, split_seed)
    options = (pad_factor, symmetry, batch_size, use_ctf, dtype, device_name(device, client))
    if client is None:
        halves = accumulate_halves(table, subset, *options, progress=progress, grid=grid,
                                   ewald=ewald)  # fmt: skip
    else:
        halves = _accumulate_on_dask(client, table, subset, options, chunk_size, progress, ewald)
    return maps_from_halves(halves, prior_weight)


def _chunk_sums(
    table, subset: np.ndarray, options: tuple, grid, ewald
) -> dict[int, FourierAccumulator]:
    """A Dask task: the sums of one chunk, made on the worker's device, returned on the CPU (a
    result may be reduced or collected on a machine without that device)."""
    halves = accumulate_halves(table, subset, *options, grid=grid, ewald=ewald)
    return {h: acc.to("cpu") for h, acc in halves.items()}


def _accumulate_on_dask(client, table, subset, options, chunk_size, progress, ewald):
    from dask.distributed import as_completed

    if chunk_size is None:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        chunk_size = max(options[2], -(-table.n // (2 * workers)))
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks = [np.arange(s, min(s + chunk_size, table.n)) for s in range(0, table.n, chunk_size)]
    # each task carries its particles' metadata in the graph: scattered data would be lost
    # with a dead worker, and its tasks could not be rerun
    grid = volume_grid(table)  # every chunk's map is that of the whole table
    futures = [
        client.submit(
            _chunk_sums, table.subset(c), subset[c], options, grid, ewald, retries=2, pure=False
        )
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
