"""The initial reference on the images' greyscale (``inference.greyscale``), against the scale
of the simulation that made the images."""

import torch

from cryomath.demo import BUNDLED_MODEL
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.inference.expectation import particle_radius_px
from cryomath.inference.greyscale import greyscale_factor
from cryomath.io import read_particles
from cryomath.pipelines import read_volume, simulate_dataset
from cryomath.simulate import SimulationSettings


def test_the_greyscale_of_noisy_images_holds_for_a_reference_of_any_band(tmp_path):
    """300 images (box 32, 2.5 A, CTF, SNR 0.05) of the bundled model; the reference is that
    map times 3, so the factor is 1/3. Measured: 3 x factor 1.022 with the shells to 40 A (2),
    1.016 to 20 A (4: the cap) and with any band beyond; summing every shell to 5.3 A (15),
    as before the cap, gave 0.886, and at SNR 0.01 0.831 (1.11 with the cap). With the
    background's noise estimate low at the first shells (before stop 54) the cap gave 1.051, and
    1.26 at SNR 0.01 (bench/RESULTS.md)."""
    n, pixel = 32, 2.5
    volume, voxel = read_volume(BUNDLED_MODEL, n, pixel)
    settings = SimulationSettings(n_particles=300, pixel_size_angstrom=pixel, snr=0.05, seed=1)
    simulate_dataset(volume, tmp_path, settings)
    table = read_particles(tmp_path / "particles.star")
    batches = iter_batches(table, 256, None, torch.float64, use_ctf=False)
    noise = estimate_noise_from_background(batches, particle_radius_px(None, n, voxel))
    factors = [3 * greyscale_factor(table, 3 * volume, voxel, noise, shell) for shell in (2, 15)]
    assert all(abs(f - 1) < 0.04 for f in factors), factors
    assert abs(factors[1] - factors[0]) < 0.02, factors  # the band beyond 20 A is not used
