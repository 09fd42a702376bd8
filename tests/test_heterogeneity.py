"""Heterogeneous simulation (``simulate.conformations``) and CryoBench's measures
(``heterogeneity.metrics``) against their oracles: a trajectory particle's image is the image of
the linearly interpolated volume, made independently; states are drawn with their weights
(a binomial test); the adjusted Rand index of scikit-learn's documented example (0.5714...)
and of a relabelling (1); the FSC-AUC of a perfect map (0.5) and of one perfect up to a
cut-off ``k_c`` (``k_c``); the latent correlation of ``3 t + noise`` (``sd_3t / sqrt(sd_3t^2 +
sd_noise^2)``); and per-state maps reconstructed from their own particles score best against
their own truth, and so do the kernel-regression maps at the states of a latent that knows
them."""

import math

import numpy as np
import pytest
import torch

from cryomath.demo import BUNDLED_MODEL
from cryomath.errors import InvalidInputError
from cryomath.heterogeneity import adjusted_rand_index, fsc_auc, latent_correlation
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import read_conformations, read_volume, simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.reconstruction import accumulate_halves, invert
from cryomath.simulate import SimulationSettings
from tests.conftest import DATA


@pytest.fixture(scope="module")
def volumes():
    base, _ = read_volume(BUNDLED_MODEL, 24, 3.0)
    # three conformations: the domain moved by 0, 2 and 4 voxels along x
    return torch.stack([torch.roll(base, s, -1) for s in (0, 2, 4)])


def test_a_trajectory_particle_is_the_image_of_the_interpolated_volume(volumes, tmp_path):
    settings = SimulationSettings(n_particles=40, pixel_size_angstrom=3.0, snr=None,
                                  trajectory=True, seed=2)  # fmt: skip
    simulate_dataset(volumes, tmp_path, settings)
    truth = read_conformations(tmp_path)
    table = read_particles(tmp_path / "particles.star")
    images = torch.from_numpy(read_mrc(tmp_path / "particles_000.mrcs", np.float64)[0])
    position = truth.coordinate * 2  # three frames: t (K - 1)
    for i in range(5):
        a = min(int(position[i]), 1)
        w = position[i] - a
        mixed = (1 - w) * volumes[a] + w * volumes[a + 1]
        spectrum = prepare_volume(mixed, 2.0, voxel_size_angstrom=3.0)
        one = table.subset(np.array([i]))
        batch = next(iter(iter_batches(one, 1, None, torch.float64, read_images=False)))
        expected = predict_images(spectrum, batch)[0]
        assert torch.allclose(images[i], expected.float().double(), atol=1e-5 * float(
            expected.abs().max()))  # fmt: skip
    nearest = np.round(position).astype(int) + 1
    assert (table.extra["rlnClassNumber"].to_numpy() == nearest).all()


def test_discrete_states_follow_their_weights_and_their_maps_score_best(volumes, tmp_path):
    weights = (0.2, 0.3, 0.5)
    settings = SimulationSettings(n_particles=1500, pixel_size_angstrom=3.0, snr=1.0, seed=1,
                                  state_weights=weights)  # fmt: skip
    simulate_dataset(volumes, tmp_path, settings)
    state = read_conformations(tmp_path).state
    counts = np.bincount(state, minlength=3)
    for k, p in enumerate(weights):  # within 4 binomial standard deviations
        assert abs(counts[k] - 1500 * p) < 4 * math.sqrt(1500 * p * (1 - p))
    table = read_particles(tmp_path / "particles.star")
    assert (table.extra["rlnClassNumber"].to_numpy() == state + 1).all()
    maps = []
    for k in range(3):
        sums = accumulate_halves(table, np.where(state == k, 1, 2))[1]
        maps.append(invert(sums))
    maps = torch.stack(maps)
    scores = fsc_auc(maps[:, None], volumes[None])  # (reconstructed, truth)
    assert bool((scores.argmax(1) == torch.arange(3)).all())
    assert float(scores.diagonal().min()) > 0.3
    # kernel regression at the states of a latent that knows them (plus noise of sd 0.05):
    # each point's map is its state's, as good as the state's own particles make it
    from cryomath.heterogeneity import kernel_regression_maps

    latent = state[:, None] + np.random.default_rng(0).normal(0, 0.05, (len(state), 1))
    kernel = kernel_regression_maps(table, latent, np.arange(3.0)[:, None], bandwidth=0.3)
    # E exp(-x^2 / 2 s^2) for x ~ N(0, 0.05^2) is s / sqrt(s^2 + 0.05^2)
    s = 0.3 * latent.std()
    assert np.allclose(kernel.particles.numpy(), counts * s / math.hypot(s, 0.05), rtol=0.02)
    kernel_scores = fsc_auc(kernel.maps[:, None], volumes[None])
    assert bool((kernel_scores.argmax(1) == torch.arange(3)).all())
    assert bool((kernel_scores.diagonal() >= 0.97 * scores.diagonal()).all())


def test_the_adjusted_rand_index_of_known_cases():
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.5714285714)
    labels = np.random.default_rng(0).integers(0, 4, 300)
    assert adjusted_rand_index(labels, (labels + 1) % 4 * 7) == pytest.approx(1.0)
    independent = np.random.default_rng(1).integers(0, 4, 20000)
    assert abs(adjusted_rand_index(labels.repeat(67)[:20000], independent)) < 0.01
    with pytest.raises(InvalidInputError, match="same particles"):
        adjusted_rand_index([0, 1, 1], [0, 1])


def test_fsc_auc_of_a_perfect_and_of_a_band_limited_map():
    g = torch.Generator().manual_seed(0)
    n = 32
    truth = torch.randn(n, n, n, generator=g, dtype=torch.float64)
    assert float(fsc_auc(truth, truth)) == pytest.approx(0.5)
    # perfect up to k_c, independent noise beyond: AUC ~ k_c (the step at k_c is one shell)
    k = torch.fft.fftfreq(n, dtype=torch.float64)
    radius = torch.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    keep = torch.round(radius * n) <= 8
    other = torch.randn(n, n, n, generator=g, dtype=torch.float64)
    mixed = torch.fft.ifftn(torch.where(keep, torch.fft.fftn(truth), torch.fft.fftn(other))).real
    assert float(fsc_auc(mixed, truth)) == pytest.approx(8.5 / n, abs=0.02)


def test_latent_correlation_of_a_noisy_coordinate():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, 50000)
    noise = rng.normal(0, 0.2, 50000)
    latent = np.stack([rng.normal(size=50000), -(3 * t + noise) + 1], 1)
    result = latent_correlation(latent, t)
    expected = 3 * math.sqrt(1 / 12) / math.sqrt(9 / 12 + 0.04)  # sd(3 t) over sd(3 t + noise)
    assert result.dimension == 1 and result.best == pytest.approx(expected, abs=0.005)
    assert result.per_dimension[1] < 0 and abs(result.per_dimension[0]) < 0.02


def test_simulate_command_makes_states_and_trajectories(tmp_path, capsys):
    """``cryomath simulate MAP MAP --state-weights`` and ``MODEL MODEL --frames``: the states in
    the STAR file and ``conformations.json``; a model whose atoms differ is refused in one
    line."""
    import json

    from cryomath.cli import main
    from cryomath.io import write_mrc

    base, _ = read_volume(BUNDLED_MODEL, 24, 3.0)
    maps = []
    for k, shift in enumerate((0, 3)):
        maps.append(tmp_path / f"state{k}.mrc")
        write_mrc(maps[-1], torch.roll(base, shift, -1).float().numpy(), 3.0)
    out = tmp_path / "discrete"
    assert main(["simulate", *map(str, maps), "--n", "60", "--state-weights", "1,3", "--out",
                 str(out), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    record = json.loads((out / "conformations.json").read_text())
    assert record["kind"] == "discrete" and record["state_weights"] == [1.0, 3.0]
    classes = read_particles(out / "particles.star").extra["rlnClassNumber"].to_numpy()
    assert (classes == np.asarray(record["state"]) + 1).all() and set(classes) == {1, 2}
    model = str(BUNDLED_MODEL)
    trajectory = tmp_path / "trajectory"
    assert main(["simulate", model, model, "--frames", "3", "--n", "10", "--box-size", "24",
                 "--pixel-size", "3", "--out", str(trajectory)]) == 0  # fmt: skip
    assert len(read_conformations(trajectory).coordinate) == 10
    other = str(DATA / "map_model" / "1uao.pdb")
    capsys.readouterr()
    assert main(["simulate", model, other, "--frames", "3", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "same atoms" in err and len(err.strip().splitlines()) == 1
    # weights that do not fit the maps are refused before anything is written
    refused = tmp_path / "refused"
    assert main(["simulate", *map(str, maps), "--state-weights", "1,2,3", "--out",
                 str(refused)]) == 1  # fmt: skip
    assert "state weights" in capsys.readouterr().err and not refused.exists()


def _moving_domain(n: int):
    """The N-domain at ``n`` pixels of ``72 / n`` A, and a function of it with its upper half
    (z >= n / 2) moved along x by ``s`` voxels, or (``s = None``) gone."""
    base, pixel = read_volume(BUNDLED_MODEL, n, 72 / n)
    upper = (torch.arange(n)[:, None, None] >= n // 2).double()

    def state(s):
        moved = 0 if s is None else torch.roll(base * upper, s, -1)
        return base * (1 - upper) + moved

    return state, pixel


def _background_noise_and_mean(folder):
    from cryomath.imaging import estimate_noise_from_background
    from cryomath.reconstruction import maps_from_halves

    table = read_particles(folder / "particles.star")
    n = int(table.image_size[0])

    def batches():
        return iter_batches(table, 512, None, torch.float64)

    noise = estimate_noise_from_background(batches(), 0.45 * n)
    mean = maps_from_halves(accumulate_halves(table, table.random_subset)).full
    return table, batches, noise, mean


def _ppca(folder, pixel, components):
    from cryomath.fourier.masks import spherical_mask
    from cryomath.heterogeneity import fit_principal_components

    table, batches, noise, mean = _background_noise_and_mean(folder)
    n = int(table.image_size[0])
    mask = spherical_mask((n, n, n), 0.35 * n, 3.0, dtype=torch.float64)
    return table, fit_principal_components(batches, mean, pixel, noise, components, 12,
                                           max_shell=n // 3, mask=mask)  # fmt: skip


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    """5,000 particles at SNR 0.1 with CTF along a trajectory from the N-domain to the domain
    without its upper half (a rank-1 change): their folder, pixel size and true coordinates
    (made once for the tests of the linear and the neural model)."""
    folder = tmp_path_factory.mktemp("continuous")
    state, pixel = _moving_domain(32)
    settings = SimulationSettings(n_particles=5000, pixel_size_angstrom=pixel, snr=0.1, seed=1,
                                  trajectory=True)  # fmt: skip
    simulate_dataset(torch.stack([state(0), state(None)]), folder, settings)
    return folder, pixel, read_conformations(folder).coordinate


def test_the_first_principal_component_follows_a_continuous_trajectory(continuous):
    """On the continuous set (``continuous``) the first latent coordinate of PPCA, and that
    of the covariance estimator, correlates with the true coordinate (measured 0.92 and 0.92;
    an E-step that knew the true component: 0.92)."""
    from cryomath.fourier.masks import spherical_mask
    from cryomath.heterogeneity import estimate_covariance

    folder, pixel, truth = continuous
    _, result = _ppca(folder, pixel, 2)
    correlation = latent_correlation(result.latent.numpy(), truth)
    assert correlation.dimension == 0 and correlation.best >= 0.9
    assert float(result.variances[0]) > 2 * float(result.variances[1])
    _, batches, noise, mean = _background_noise_and_mean(folder)
    mask = spherical_mask((32,) * 3, 0.35 * 32, 3.0, dtype=torch.float64)
    covariance = estimate_covariance(batches, mean, pixel, noise, 2, max_shell=32 // 3, mask=mask)
    correlation = latent_correlation(covariance.latent.numpy(), truth)
    assert correlation.dimension == 0 and correlation.best >= 0.9
    assert float(covariance.variances[0]) > 2 * float(covariance.variances[1])


def test_the_neural_model_follows_the_continuous_trajectory(continuous):
    """The VAE (12 epochs of a small decoder) on the continuous set: its latents are the
    posterior means under the decoder, correlation measured 0.904 (after 8 epochs: 0.9015,
    where Laplace's modes gave 0.895 and the encoder's means 0.857), under the linear limit of
    0.92; the importance sampler's means and sds are those of the posterior by quadrature."""
    from cryomath.heterogeneity.neural import NeuralModel, NeuralSettings

    folder, pixel, truth = continuous
    table, _, noise, mean = _background_noise_and_mean(folder)

    def chunks(epoch):
        order = np.random.default_rng(epoch).permutation(table.n)
        for start in range(0, table.n, 1000):
            rows = order[start : start + 1000]
            yield from iter_batches(table, 1000, None, torch.float64, rows=rows)

    settings = NeuralSettings(epochs=12, width=64, max_shell=8)
    model = NeuralModel(next(chunks(0)), table.n, pixel, noise, settings, mean)
    for epoch in range(settings.epochs):
        model.train_epoch(chunks(epoch))
    z, sd = model.latents(iter_batches(table, 1000, None, torch.float64))
    with torch.no_grad():  # the encoder's means alone
        seen = [model.observe(b) for b in iter_batches(table, 1000, None, torch.float64)]
        encoded = torch.cat([model.encoder(o.images)[0] for o in seen])
    order = torch.cat([o.indices for o in seen]).numpy()
    amortised = latent_correlation(encoded.numpy(), truth[order]).best
    assert latent_correlation(z.numpy(), truth).best >= max(0.9, amortised + 0.02)
    assert 0.2 < float(sd.mean()) < 0.7  # the posterior is narrower than the prior
    # the oracle of the importance sampler: each posterior by quadrature on a grid of spacing
    # 0.2 (a posterior of sd s >= 0.2 has its mean to exp(-2 pi^2 s^2 / 0.2^2) by Poisson's sum)
    grid = torch.linspace(-4, 4, 41, dtype=model.dtype)
    with torch.no_grad():
        log_post = torch.stack([-model.nll(seen[0], g.expand(1000, 1)) - g * g / 2
                                for g in grid], -1).double()  # fmt: skip
    posterior = torch.softmax(log_post, -1)
    exact_mean = posterior @ grid.double()
    exact_sd = (posterior @ grid.double() ** 2 - exact_mean**2).sqrt()
    rows = seen[0].indices  # measured: 0.007 median, 0.12 at most; sd ratio 0.96
    assert float(exact_sd.min()) >= 0.2
    assert float((z[rows, 0] - exact_mean).abs().median()) < 0.02
    assert float((z[rows, 0] - exact_mean).abs().max()) < 0.25
    assert 0.9 < float((sd[rows, 0] / exact_sd).median()) < 1.1


def test_the_covariance_of_rank_two_variability_spans_its_eigenvolumes():
    """Noiseless images (2,000, CTF, box 32) of ``mu + a v1 + b v2`` with ``a, b`` normal
    (sd 0.3 and 0.15 of ``|mu|``), ``v1, v2`` smooth unit volumes: the covariance estimator's
    two eigenvolumes span theirs (principal angles measured 1.0 and 2.8 degrees; the sketch
    alone, without EM refinement, 5.4 and 8.8), its variances are the coefficients' (within
    8 %), and the latent coordinates follow ``(a, b)`` (|rho| measured 0.9999, 0.9998)."""
    from cryomath.ctf import CTF
    from cryomath.heterogeneity import estimate_covariance
    from cryomath.imaging import NoiseSpectrum, ParticleBatch
    from cryomath.so3 import random_rotations

    n, count, pixel = 32, 2000, 72 / 32
    mu, _ = read_volume(BUNDLED_MODEL, n, pixel)
    c = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")

    def blob(at):
        return torch.exp(-((x - at[0]) ** 2 + (y - at[1]) ** 2 + (z - at[2]) ** 2) / 12.5)

    v = torch.stack([blob((4, 0, 2)) - blob((-4, 0, 2)), blob((0, 5, -3))])
    v = v / torch.linalg.vector_norm(v.flatten(1), dim=1)[:, None, None, None]
    g = torch.Generator().manual_seed(0)
    coefficients = torch.randn((count, 2), generator=g, dtype=torch.float64)
    coefficients *= torch.tensor([0.3, 0.15], dtype=torch.float64) * float(mu.norm())
    rotations = random_rotations(count, generator=g, dtype=torch.float64)
    defocus = 10000 + 20000 * torch.rand(count, generator=g, dtype=torch.float64)
    ctf = CTF(defocus, defocus, torch.zeros(count), 300.0, 2.7, 0.1)
    images = predict_images(prepare_volume(mu, 2.0, voxel_size_angstrom=pixel),
                            ParticleBatch.from_tensors(None, rotations, pixel, None, ctf,
                                                       image_size=n))  # fmt: skip
    for k in range(2):
        spectrum = prepare_volume(v[k], 2.0, voxel_size_angstrom=pixel)
        batch = ParticleBatch.from_tensors(None, rotations, pixel, None, ctf, image_size=n)
        images += coefficients[:, k, None, None] * predict_images(spectrum, batch)
    # a noise power far below the signal's (none is added): whitening only
    sigma2 = float((images**2).mean()) * n * n / 2 * 1e-10
    noise = NoiseSpectrum((0,), torch.full((1, n), sigma2, dtype=torch.float64))

    def batches():
        for start in range(0, count, 500):
            part = slice(start, start + 500)
            one = CTF(defocus[part], defocus[part], torch.zeros(500), 300.0, 2.7, 0.1)
            batch = ParticleBatch.from_tensors(images[part], rotations[part], pixel, None, one)
            batch.indices = torch.arange(start, start + 500)
            yield batch

    result = estimate_covariance(batches, mu, pixel, noise, 2, max_shell=8)
    truth, _ = torch.linalg.qr(v.flatten(1).T)
    cosines = torch.linalg.svdvals(truth.T @ result.components.flatten(1).T)
    angles = torch.rad2deg(torch.arccos(cosines.clamp(max=1)))
    assert float(angles.max()) < 5
    expected = (coefficients**2).mean(0)
    assert torch.allclose(result.variances, expected, rtol=0.08)
    correlation = torch.corrcoef(torch.cat([result.latent, coefficients], 1).T)[:2, 2:]
    assert float(correlation.abs().diagonal().min()) > 0.99


def test_principal_components_separate_two_states_and_their_maps_score_as_the_truth(tmp_path):
    """5,000 particles at SNR 0.1 with CTF, half with the upper half of the N-domain moved by 4
    voxels: 2-means on the first latent coordinate recovers the states (adjusted Rand index),
    and the maps of its two classes score at least 90 % of the FSC-AUC of the maps of the true
    states (the same particles)."""
    from cryomath.heterogeneity import kmeans

    state, pixel = _moving_domain(24)  # box 32 took twice as long for the same result
    volumes = torch.stack([state(0), state(4)])
    settings = SimulationSettings(n_particles=5000, pixel_size_angstrom=pixel, snr=0.1, seed=2)
    simulate_dataset(volumes, tmp_path, settings)
    table, result = _ppca(tmp_path, pixel, 1)
    truth = read_conformations(tmp_path).state
    found = kmeans(result.latent[:, :1], 2).labels.numpy()
    assert adjusted_rand_index(truth, found) >= 0.9

    def maps(labels):
        return torch.stack([invert(accumulate_halves(table, np.where(labels == k, 1, 2))[1])
                            for k in (0, 1)])  # fmt: skip

    reference = fsc_auc(maps(truth), volumes)
    predicted = maps(found)
    # name the found classes after the true states they overlap most
    if float(fsc_auc(predicted, volumes).sum()) < float(fsc_auc(predicted.flip(0), volumes).sum()):
        predicted = predicted.flip(0)
    assert bool((fsc_auc(predicted, volumes) >= 0.9 * reference).all())


def test_variability_command_writes_maps_latents_and_figures(tmp_path, capsys):
    """``cryomath variability`` by PPCA and by the covariance, with the kernel series: the
    files it promises, latents (and positive standard deviations) for every particle in the
    table's order, whose median split finds the two states; variances largest first; a second
    run without ``--force`` is refused in one line."""
    import json

    from cryomath.cli import main

    state, pixel = _moving_domain(24)
    settings = SimulationSettings(n_particles=300, pixel_size_angstrom=pixel, snr=1.0, seed=3)
    simulate_dataset(torch.stack([state(0), state(None)]), tmp_path / "data", settings)
    star, out = str(tmp_path / "data" / "particles.star"), tmp_path / "var"
    args = ["variability", star, "--components", "2", "--iterations", "4", "--out", str(out)]
    states = read_conformations(tmp_path / "data").state
    for method, folder in (("ppca", out), ("covariance", tmp_path / "cov")):
        assert main([*args[:-1], str(folder), "--method", method, "--kernel-series",
                     "--json"]) == 0  # fmt: skip
        summary = json.loads(capsys.readouterr().out)
        assert summary["variances"][0] >= summary["variances"][1]
        for name in ("mean.mrc", "variance.mrc", "component_1.mrc", "component_2_frame_5.mrc",
                     "component_2_kernel_5.mrc", "latent.png", "components.png"):  # fmt: skip
            assert (folder / name).exists(), name
        latent, sd = np.load(folder / "latent.npy"), np.load(folder / "latent_sd.npy")
        assert latent.shape == sd.shape == (300, 2) and (sd > 0).all()
        assert adjusted_rand_index(states, latent[:, 0] > np.median(latent[:, 0])) > 0.8, method
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "exists" in err and len(err.strip().splitlines()) == 1


def test_train_vae_continues_exactly_and_analyze_writes_states(tmp_path, capsys):
    """``cryomath train-vae`` for 2 epochs equals 1 epoch then ``--continue`` to 2 (the same
    latents to float32 rounding: the checkpoint holds the optimiser, the order is seeded by
    epoch); the autodecoder trains too, and with ``--posterior-samples 0`` its latents get
    Laplace's posterior standard deviations, at most the prior's, and an odd sample count is
    refused in one line; ``analyze`` writes its states, maps and figure; a second run without
    ``--force`` is refused in one line."""
    import json

    from cryomath.cli import main

    state, pixel = _moving_domain(24)
    settings = SimulationSettings(n_particles=200, pixel_size_angstrom=pixel, snr=1.0, seed=3)
    simulate_dataset(torch.stack([state(0), state(None)]), tmp_path / "data", settings)
    star = str(tmp_path / "data" / "particles.star")
    common = ["train-vae", star, "--zdim", "2", "--width", "32", "--json"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*common, "--epochs", "2", "--out", str(straight)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and len(summary["objective"]) == 2
    assert main([*common, "--epochs", "1", "--out", str(resumed)]) == 0
    assert main([*common, "--epochs", "2", "--out", str(resumed), "--continue"]) == 0
    capsys.readouterr()
    one, two = np.load(straight / "latent.npy"), np.load(resumed / "latent.npy")
    assert one.shape == (200, 2) and np.allclose(one, two, atol=1e-5)
    assert (np.load(straight / "latent_sd.npy") > 0).all()
    auto = tmp_path / "auto"
    with_mode = [*common, "--epochs", "1", "--autodecoder", "--out", str(auto)]
    assert main([*with_mode, "--posterior-samples", "0"]) == 0
    # Laplace's posterior (no importance samples): precision J^H W J + I >= I, so 0 < sd <= 1
    auto_sd = np.load(auto / "latent_sd.npy")
    assert ((auto_sd > 0) & (auto_sd <= 1 + 1e-6)).all()
    capsys.readouterr()
    assert main([*with_mode, "--posterior-samples", "3", "--force"]) == 1
    err = capsys.readouterr().err
    assert "even posterior_samples" in err and len(err.strip().splitlines()) == 1
    assert main(["analyze", str(straight), "--states", "2", "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)
    assert sum(analysis["particles"]) == 200
    for name in ("embedding.png", "states.npy", "state_1.mrc", "state_2.mrc", "mean.mrc"):
        assert (straight / name).exists(), name
    assert main([*common, "--epochs", "1", "--out", str(straight)]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and len(err.strip().splitlines()) == 1
