"""The gold-standard FSC of auto-refinement (``reconstruction.fourier_average_fsc``): RELION's,
between the halves' unregularised Fourier averages. Oracles: identical halves correlate
exactly; independent noise where the halves share no signal correlates to zero within its
standard error (1 / sqrt(samples) per shell)."""

import numpy as np
import pytest
import torch

from cryomath.atoms import map_from_model, read_atoms
from cryomath.demo import BUNDLED_MODEL
from cryomath.errors import InvalidInputError
from cryomath.fourier import crop_or_pad
from cryomath.imaging import FourierAccumulator, ParticleBatch
from cryomath.projection import project_fourier
from cryomath.reconstruction import fourier_average_fsc, insert_particles, invert
from cryomath.resolution import fourier_shell_correlation, low_pass
from cryomath.so3 import random_rotations

N, PIXEL, IMAGES = 32, 2.0, 400
SIGNAL_ANGSTROM = 12.0  # the halves share signal up to shell 64 / 12, about 5


@pytest.fixture(scope="module")
def halves():
    """Two halves of images of the same low-passed map at random poses, each with its own
    white noise (3 times the projections' sd)."""
    atoms = read_atoms(BUNDLED_MODEL)
    volume = crop_or_pad(map_from_model(atoms, PIXEL, None, margin_angstrom=2.0)[0], (N, N, N))
    volume = low_pass(volume, SIGNAL_ANGSTROM, PIXEL)
    generator = torch.Generator().manual_seed(0)
    sums = []
    for _ in range(2):
        rotations = random_rotations(IMAGES, generator=generator)
        images = project_fourier(volume, rotations)
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        acc = FourierAccumulator(N, 2.0, torch.float64, None, PIXEL)
        batch = ParticleBatch.from_tensors(images + 3 * images.std() * noise, rotations, PIXEL)
        insert_particles(acc, batch)
        sums.append(acc)
    return sums


def test_identical_halves_correlate_exactly(halves):
    fsc = fourier_average_fsc(halves[0], halves[0], PIXEL).fsc
    assert torch.allclose(fsc, torch.ones_like(fsc), atol=1e-12)


def test_shells_without_shared_signal_correlate_to_zero(halves):
    curve = fourier_average_fsc(halves[0], halves[1], PIXEL)
    assert curve.fsc[1:4].min() > 0.8  # the shared signal
    beyond = slice(8, N // 2 + 1)  # past the low pass's edge: independent noise only
    error = 1 / np.sqrt(curve.counts[beyond].numpy())
    assert np.all(np.abs(curve.fsc[beyond].numpy()) < 3 * error)
    # the half maps regularised by an FSC of 0 beyond the signal (as refine's prior makes
    # them) hold there the leak of the shared low resolutions, which correlates
    prior = torch.zeros(N // 2 + 1, dtype=torch.float64)
    prior[:6] = 0.99
    maps = [invert(acc, half_map_fsc=prior) for acc in halves]
    leaked = fourier_shell_correlation(maps[0], maps[1], PIXEL).fsc[beyond].numpy()
    assert leaked.mean() > 0.1 > 10 * abs(curve.fsc[beyond].numpy().mean())


def test_halves_of_other_boxes_or_without_weights_are_refused(halves):
    with pytest.raises(InvalidInputError, match="boxes of 32 and 24 voxels"):
        fourier_average_fsc(halves[0], FourierAccumulator(24, 2.0, torch.float64), PIXEL)
    bare = FourierAccumulator(N, 2.0, torch.float64, with_weights=False)
    with pytest.raises(InvalidInputError, match="keeps no weights"):
        fourier_average_fsc(halves[0], bare, PIXEL)
