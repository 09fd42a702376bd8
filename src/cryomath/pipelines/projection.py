"""Projections of a map at the poses of a particle file, streamed to an MRC stack."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from cryomath.devices import Staging
from cryomath.errors import InvalidInputError
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import MRCStackWriter
from cryomath.io.atomic import check_output_path
from cryomath.projection import prepare_volume


def project_particles(
    volume: torch.Tensor,
    voxel_size_angstrom: float,
    table,
    out: str | Path,
    use_ctf: bool = False,
    pad_factor: float = 2.0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``out`` (.mrcs), image ``i`` the projection of ``volume (n, n, n)`` at particle
    ``i``'s pose and origin (and CTF with ``use_ctf``), in batches of ``batch_size`` made on
    ``device`` (``imaging.predict_images``: each optics group at its own pixel size, so a map
    projected for a group of another pixel size shows what that group's camera sees); the stack
    appears only when complete. Returns the number of images."""
    check_output_path(out, force)
    table.require("rotations", purpose="projection")
    if use_ctf:
        table.require("ctf", purpose="projection with a CTF")
    n = volume.shape[-1]
    if table.image_size is not None and set(table.image_size.tolist()) != {n}:
        raise InvalidInputError(
            f"box mismatch: the map is {n}^3 but the particles have "
            f"{sorted(set(table.image_size.tolist()))}-pixel images"
        )
    if table.pixel_size_angstrom is None:  # poses without images (a cryoDRGN pickle)
        table = replace(table, pixel_size_angstrom=voxel_size_angstrom)
    staging = Staging(device)
    spectrum = prepare_volume(staging.to_device(volume), pad_factor,
                              voxel_size_angstrom=voxel_size_angstrom)  # fmt: skip
    with MRCStackWriter(out, table.n, (n, n), voxel_size_angstrom, force=force) as writer:
        batches = iter_batches(table, batch_size, staging.device, volume.dtype,
                               read_images=False, use_ctf=use_ctf, in_table_order=True)  # fmt: skip
        for batch in batches:
            writer.write(staging.to_host(predict_images(spectrum, batch)))
            if progress is not None:
                progress(len(batch))
    return table.n
