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
