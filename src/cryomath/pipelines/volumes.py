"""The map a simulation or a projection starts from: an MRC map, or an atomic model rendered
as a scattering potential, on a cubic grid of a chosen box and voxel size."""

from pathlib import Path

import numpy as np
import torch

from cryomath.errors import InvalidInputError


def read_volume(
    source: Path, box_size: int | None = None, voxel_size_angstrom: float | None = None
) -> tuple[torch.Tensor, float]:
    """``(volume (n, n, n) float64, voxel size in Angstrom)``. A model is rendered about its
    centroid (defaults: 128 voxels of 1 A). A map is Fourier-resampled to
    ``voxel_size_angstrom`` when given (or takes it when its header says 0), then cropped or
    padded to ``box_size`` about voxel ``n // 2`` at constant voxel size."""
    from cryomath.atoms import read_atoms, render_potential
    from cryomath.fourier import crop_or_pad, rescale
    from cryomath.io import read_mrc
    from cryomath.io.models import is_model_path

    if is_model_path(source):
        atoms = read_atoms(source)
        n, voxel = box_size or 128, voxel_size_angstrom or 1.0
        origin = atoms.positions_angstrom.mean(0) - (n // 2) * voxel
        return render_potential(atoms, (n, n, n), voxel, origin, dtype=torch.float64), voxel
    data, info = read_mrc(source, dtype=np.float64)
    if len(set(data.shape)) != 1:
        raise InvalidInputError(f"{source}: the map must be cubic, got {data.shape}")
    volume = torch.from_numpy(data)
    voxel = float(info.voxel_size_angstrom[0])
    if voxel <= 0:
        if voxel_size_angstrom is None:
            raise InvalidInputError(f"{source}: voxel size is 0 in the header; pass --pixel-size")
        voxel = voxel_size_angstrom
    elif voxel_size_angstrom is not None and abs(voxel_size_angstrom - voxel) > 1e-6:
        volume, voxel = rescale(volume, 3, voxel, voxel_size_angstrom)
    if box_size is not None and box_size != volume.shape[-1]:
        volume = crop_or_pad(volume, (box_size,) * 3)
    return volume, voxel


def read_volumes(sources: list[Path], box_size: int | None = None,
                 voxel_size_angstrom: float | None = None,
                 frames: int | None = None) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Several maps or models on one grid, ``(K, n, n, n)`` float64 and the voxel size (each
    as :func:`read_volume`). With ``frames``: two models of the same atoms, their coordinates
    interpolated linearly into ``frames`` models, each rendered about the first model's
    centroid (a trajectory from the first to the second)."""
    from dataclasses import replace

    from cryomath.atoms import read_atoms, render_potential
    from cryomath.io.models import is_model_path

    if frames is None:
        read = [read_volume(source, box_size, voxel_size_angstrom) for source in sources]
        shapes = {tuple(v.shape) for v, _ in read}
        if len(shapes) != 1 or len({round(voxel, 6) for _, voxel in read}) != 1:
            raise InvalidInputError(
                "the maps must share one box and voxel size (use --box-size and --pixel-size)"
            )
        return torch.stack([v for v, _ in read]), read[0][1]
    if frames < 2 or len(sources) != 2 or not all(is_model_path(s) for s in sources):
        raise InvalidInputError("--frames interpolates two atomic models into at least 2 frames")
    first, last = (read_atoms(s) for s in sources)
    if (
        first.positions_angstrom.shape != last.positions_angstrom.shape
        or not (first.elements == last.elements).all()
    ):
        raise InvalidInputError("the two models must have the same atoms in the same order")
    n, voxel = box_size or 128, voxel_size_angstrom or 1.0
    origin = first.positions_angstrom.mean(0) - (n // 2) * voxel
    volumes = []
    for t in np.linspace(0, 1, frames):
        positions = (1 - t) * first.positions_angstrom + t * last.positions_angstrom
        atoms = replace(first, positions_angstrom=positions)
        volumes.append(render_potential(atoms, (n, n, n), voxel, origin, dtype=torch.float64))
    return torch.stack(volumes), voxel
