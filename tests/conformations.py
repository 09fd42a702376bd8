"""Particles of two conformations for the 3-D classification tests: the bundled 6VYB N-domain
whole, or without the part at x >= n / 2 + 2, at Haar-random poses, with CTFs and white noise
for an SNR over the stack."""

from pathlib import Path

import numpy as np
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.imaging import ParticleBatch, predict_images
from cryomath.io import ParticleTable, write_mrc
from cryomath.io.particles import CTFParameters
from cryomath.pipelines import read_volume
from cryomath.projection import prepare_volume

MODEL = Path(__file__).resolve().parents[1] / "src" / "cryomath" / "data" / "6vyb_ndom.pdb.gz"


def two_conformations(folder: Path, count: int, n: int, voxel: float, seed: int, snr: float,
                      shift_sd_px: float = 0.0):  # fmt: skip
    """``count`` images in ``folder / "stack.mrcs"`` (box ``n`` of ``voxel`` A; defocus
    1-2.5 um; offsets of ``shift_sd_px`` sd, none at 0): their table (no poses or origins),
    each one's conformation (0 whole, 1 cut), the two maps, the true poses ``(count, 3, 3)``
    and shifts ``(count, 2)`` px (``-origin / pixel``)."""
    full, voxel = read_volume(MODEL, n, voxel)
    cut = full.clone()
    cut[:, :, n // 2 + 2 :] = 0
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, 2, (count,), generator=g)
    poses = so3.random_rotations(count, g)
    shifts = torch.zeros(count, 2, dtype=torch.float64)
    if shift_sd_px > 0:
        shifts = shift_sd_px * torch.randn(count, 2, generator=g, dtype=torch.float64)
    defocus = (10000 + 15000 * torch.rand(count, generator=g, dtype=torch.float64)).numpy()
    ones, zeros = np.ones(count), np.zeros(count)
    ctf = CTFParameters(defocus, defocus, zeros, 300 * ones, 2.7 * ones, 0.1 * ones, zeros,
                        zeros, ones)  # fmt: skip
    images = torch.zeros(count, n, n, dtype=torch.float64)
    for k, volume in enumerate((full, cut)):
        pick = truth == k
        model = CTF.from_parameters(ctf.subset(pick.numpy()), dtype=torch.float64)
        batch = ParticleBatch.from_tensors(None, poses[pick], voxel, shifts[pick], model, n)
        images[pick] = predict_images(prepare_volume(volume, 2.0, voxel_size_angstrom=voxel),
                                      batch)  # fmt: skip
    noise = torch.randn(images.shape, generator=g, dtype=torch.float64)
    write_mrc(folder / "stack.mrcs", (images + noise * (images.var() / snr).sqrt()).numpy(),
              voxel)  # fmt: skip
    table = ParticleTable(
        n=count, ctf=ctf, pixel_size_angstrom=voxel * ones, image_size=np.full(count, n),
        image_paths=np.full(count, "stack.mrcs", dtype=object), image_indices=np.arange(count),
        optics_group=np.ones(count, np.int64), root=folder,
    )  # fmt: skip
    return table, truth.numpy(), full, cut, poses, shifts
