"""The Poisson E-step scores (``inference.poisson_pose_scores``) against every hypothesis's
Poisson log-likelihood evaluated directly in real space, and at a low dose on counting images
simulated by ``cryomath simulate --dose``, against the truth."""

from pathlib import Path

import pytest
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import ParticleBatch
from cryomath.inference.band import BandProjections
from cryomath.inference.poisson import poisson_pose_scores
from cryomath.inference.scores import pose_scores
from cryomath.noise import poisson_log_likelihood
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume


def test_poisson_scores_equal_every_hypothesis_evaluated_directly():
    n, b, r, dose, pixel = 16, 3, 5, 2.0, 1.5
    n0 = dose * pixel**2
    g = torch.Generator().manual_seed(0)
    spectrum = prepare_volume(torch.randn(n, n, n, generator=g, dtype=torch.float64), 2.0)
    rotations = so3.random_rotations(r, 3)
    defocus = 10000 + 10000 * torch.rand(b, generator=g, dtype=torch.float64)
    ctf = CTF(defocus, defocus - 300, torch.tensor(20.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    projections = extract_central_slices_rfft_3d(spectrum, rotations)
    projections = projections * (0.3 * n0 / projections.abs().max())  # contrast within +-0.3
    counts = torch.poisson(torch.full((b, n, n), n0, dtype=torch.float64), generator=g)
    batch = ParticleBatch.from_tensors(counts - n0, so3.random_rotations(b, 9), pixel, ctf=ctf)
    shifts = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-3.0, 1.0], [5.0, 4.0]], dtype=torch.float64)
    for max_shell in (None, 4):
        scores = poisson_pose_scores(batch, projections, shifts, dose, max_shell)
        band = torch.ones(n, n // 2 + 1, dtype=torch.float64)
        if max_shell is not None:
            ky = torch.fft.fftfreq(n, dtype=torch.float64)[:, None] * n
            kx = torch.fft.rfftfreq(n, dtype=torch.float64)[None] * n
            band = (torch.sqrt(ky**2 + kx**2).round() <= max_shell).double()
        c = batch.ctf_values()[:, None, None]  # (B, 1, 1, n, m)
        ramp = phase_ramp((n, n), shifts, rfft=True)[None, :, None]  # (1, S, 1, n, m)
        predicted = ifft_nd(c * projections[None, None] * band * ramp, (n, n), rfft=True)
        direct = poisson_log_likelihood(counts[:, None, None], n0 + predicted)  # (B, S, R)
        assert scores.shape == (b, len(shifts), r)
        assert float((scores - direct).abs().max()) < 1e-9 * float(direct.abs().max())
    # a band table has no origin, which a Poisson score counts: refused in one line
    with pytest.raises(InvalidInputError, match="Poisson scores need full projections"):
        pose_scores(batch, BandProjections.of(projections, 4), shifts, None, 4, dose)


def test_refinement_with_the_poisson_likelihood_finds_the_poses_of_counting_images(tmp_path):
    """One refinement iteration with ``dose_e_per_a2`` (``refine --dose``) on 96 counting images
    (``simulate --dose 1``: box 24, 4 A, 16 e per pixel, contrast rms 0.2, CTF) from the truth:
    the poses are found within the final grid's step (15 degrees) for the median particle and
    within 30 degrees for at least 95 %, as with the Gaussian likelihood on the same images."""
    from dataclasses import replace

    from cryomath.inference.refine import RefineSettings, refine_iteration, start_refinement
    from cryomath.io import read_particles
    from cryomath.pipelines import read_volume, simulate_dataset
    from cryomath.simulate import SimulationSettings

    model = Path(__file__).parents[1] / "src/cryomath/data/6vyb_ndom.pdb.gz"
    volume, voxel = read_volume(model, 24, 4.0)
    simulate_dataset(volume, tmp_path, SimulationSettings(
        n_particles=96, pixel_size_angstrom=4.0, snr=None, dose_e_per_a2=1.0,
        contrast_rms=0.2, seed=3))  # fmt: skip
    table = read_particles(tmp_path / "particles.star")
    truth = torch.as_tensor(table.rotations)
    start = replace(table, rotations=None)
    errors = {}
    for dose in (None, 1.0):
        settings = RefineSettings(healpix_order=1, offset_range_px=2.0, max_significant=8,
                                  ini_high_angstrom=12.0, dose_e_per_a2=dose)  # fmt: skip
        state = start_refinement(start, volume, voxel, settings)
        refine_iteration(start, state, settings)
        found = torch.as_tensor(state.particles.rotations)
        errors[dose] = torch.rad2deg(so3.geodesic_distance(truth, found))
    for e in errors.values():
        assert float(e.median()) < 15.0
        assert float((e > 30).double().mean()) <= 0.05
    assert state.group_scales == {}  # counts are not rescaled
