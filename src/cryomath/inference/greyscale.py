"""The initial reference on the images' greyscale (RELION's "ref. map is not on absolute
greyscale": a map from another program, a model or a simulation has an arbitrary scale, and a
Gaussian likelihood of images against a map of the wrong scale puts every particle at a wrong
pose with certainty).

The scale ``a`` matches powers: over the shells ``1..max_shell``, the images' mean power less
the noise's (``2 sigma2`` per rfft sample) equals ``a^2`` times the mean power of CTF-modulated
projections at Haar-random poses (the same images' CTFs). The shells stop at 20 A
(``LOWEST_RESOLUTION_ANGSTROM``) whatever ``max_shell``: beyond, in noisy images, their power
less the noise's is a small difference of large numbers, and errors of a few per cent in the
background's noise estimate there outweigh the signal. On RELION's 600 images of SNR 0.01
(``relion313_reference``, true scale 0.99) a reference low-passed to 3 A was scaled by 0.14
with shells to 3 A, and by 0.97 with shells to 20 A (bench/RESULTS.md, stop 53).
"""

import math

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.imaging import NoiseSpectrum, iter_batches
from cryomath.inference.refine_rules import shell_of
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.so3 import random_rotations

LOWEST_RESOLUTION_ANGSTROM = 20.0  # the finest shell the power match uses (module docstring)


def greyscale_factor(
    table, reference: torch.Tensor, voxel_size_angstrom: float, noise: NoiseSpectrum,
    max_shell: int, rows: np.ndarray | None = None, batch_size: int = 256, device=None,
) -> float:  # fmt: skip
    """The factor that puts ``reference (n, n, n)`` on the greyscale of the particles ``rows``
    (default: the first 1,000) of ``table``, from the shells to ``max_shell`` and to 20 A
    (module docstring)."""
    rows = np.arange(min(table.n, 1000)) if rows is None else rows
    lowest = shell_of(LOWEST_RESOLUTION_ANGSTROM, reference.shape[-1], voxel_size_angstrom)
    max_shell = max(1, min(max_shell, lowest))
    spectrum = prepare_volume(reference.double().to(device), 2.0,
                              voxel_size_angstrom=voxel_size_angstrom)  # fmt: skip
    signal = model = 0.0
    for i, batch in enumerate(iter_batches(table, batch_size, device, torch.float64, rows=rows)):
        n = batch.image_size
        band = (shell_index((n, n), device=batch.device) <= max_shell) & (
            shell_index((n, n), device=batch.device) >= 1
        )
        m = hermitian_multiplicity((n, n), device=batch.device, dtype=torch.float64) * band
        sigma2 = noise.for_batch(batch)[shell_index((n, n), device=batch.device)]
        signal += float(((batch.spectra.abs() ** 2 - 2 * sigma2) * m).sum())
        poses = random_rotations(len(batch), i, torch.float64, batch.device)
        slices = extract_central_slices_rfft_3d(spectrum, poses, image_size=n,
                                                frequency_scale=voxel_size_angstrom
                                                / batch.pixel_size_angstrom)  # fmt: skip
        ctf = batch.ctf_values()
        slices = slices if ctf is None else slices * ctf
        model += float((slices.abs() ** 2 * m).sum())
    if not (signal > 0 and model > 0):
        raise InvalidInputError(
            "the images hold no signal power above the noise at low resolution (or the "
            "reference is empty): cannot put the reference on their greyscale"
        )
    return math.sqrt(signal / model)
