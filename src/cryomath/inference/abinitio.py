"""Ab initio: maps from particles alone by stochastic gradient descent on the MAP objective with
the poses marginalised (cryoSPARC's ab initio, Punjani et al. 2017; RELION 3.1's ``--sgd``), or
with each image at its best pose from the hierarchical search (cryoDRGN2's HPS).

Each iteration draws a minibatch (its size rising linearly from ``initial_batch`` to
``final_batch``, seeded by ``(seed, iteration)``, so a continued run draws what an uninterrupted
one would) and scores it against the K maps up to a band that rises linearly in shells from
``initial_resolution_angstrom`` to ``final_resolution_angstrom`` (RELION: 35 -> 15 A, cryoSPARC
35 -> 12 A). The E-step is the refinement's (``expectation_pass``: a global HEALPix search of
``healpix_order`` with oversampling, offsets within ``offset_range_px`` of the box centre, class
fractions as priors); with ``engine="hps"`` the minibatch's best poses instead
(``hierarchical``), inserted with weight 1.

The step. On the accumulator's padded grid (``reconstruction.padded_spectrum_of_volume``),
the minibatch's sums ``D = sum w C X`` and ``W = sum w C^2`` give the negative gradient of its
log-likelihood ``D - W S`` at the map's spectrum ``S`` (per voxel: trilinear insertion is
nearly diagonal), preconditioned by a running mean ``P`` of ``W`` (the curvature a whole
minibatch sees; a voxel this minibatch missed is not pulled to zero):
``G = (D - W S) / (P + lambda)``, ``lambda`` 1 % of ``P``'s mean. RELION's momentum step:
``dS <- mu dS + (1 - mu) eta G``, ``S <- S + dS`` (``mu`` 0.9, ``eta`` 0.5: mlo:4138-4146).
The map is then masked (a soft sphere of the particle's diameter) and made non-negative:
density is positive (the images' contrast, as ``simulate`` and ``relion_project`` write it).

K classes (heterogeneous starts) start from K random blobs; one that explains the images a
little better takes most of them, and a class left with few particles barely moves. RELION
4's rule undoes that: between the first and the last sixth of the run a class whose fraction
falls below ``class_inactivity_threshold / K`` restarts, here from the particles the largest
class explains worst (``_reset_inactive_class``). The grid map only: a neural map's classes
are left as they are.

The start: each class is the reconstruction of a seeded random draw of ``initial_batch``
particles at random poses, low-passed to the initial resolution: a blob of the right scale.
The noise spectrum comes from the images' background outside the particle (it does not
depend on the map, which is wrong for most of the run) and stays.

With ``representation="neural"`` each map is a neural field (``inference.neural_volume``,
cryoDRGN2's decoder): after the E-step it takes ``neural_steps`` Adam passes over the minibatch
at each image's most probable pose (a hard assignment, as cryoDRGN2's, where the grid step
uses the marginal), and the pose search sees it rendered on the grid, masked and non-negative.
Its start is the same random-pose blob, fitted up to the initial band. With ``neural_replay``
r > 1 it fits the last r minibatches, each image at its pose from its last visit (cryoDRGN2
trains on all images between searches).

The hand cannot be known from projections (a map and its mirror image give the same images up
to a rotation): the result has either hand; ``fitting.flip_hand`` mirrors it.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.masks import spherical_mask
from cryomath.imaging import (
    NoiseSpectrum,
    estimate_noise_from_background,
    iter_batches,
)
from cryomath.inference.abinitio_steps import (
    best_pose_sums,
    constrained,
    grid_step,
    neural_start,
    neural_step,
    reconstruction,
)
from cryomath.inference.expectation import (
    ParticleState,
    PassSums,
    References,
    check_settings,
    expectation_pass,
    particle_radius_px,
)
from cryomath.inference.neural_volume import NeuralVolume
from cryomath.inference.refine_rules import shell_of
from cryomath.inference.sampling import Sampling
from cryomath.so3 import random_rotations

ENGINES = ("em", "hps")
REPRESENTATIONS = ("grid", "neural")


@dataclass
class AbInitioSettings:
    """The user's choices (RELION's ``--sgd_*`` names in brackets)."""

    classes: int = 1  # [--K]
    iterations: int = 60  # [--sgd_ini_iter + --sgd_inbetween_iter + --sgd_fin_iter]
    initial_batch: int = 90  # [--sgd_ini_subset]; cryoSPARC 90
    final_batch: int = 300  # [--sgd_fin_subset]; cryoSPARC 300
    initial_resolution_angstrom: float = 35.0  # [--sgd_ini_resol]
    final_resolution_angstrom: float = 12.0  # [--sgd_fin_resol]
    learning_rate: float = 0.5  # [--sgd_stepsize]
    momentum: float = 0.9  # [--mu]
    healpix_order: int = 2  # [--healpix_order]: 15 degrees, oversampled to 7.5
    offset_range_px: float = 6.0  # [--offset_range]
    offset_step_px: float = 2.0  # [--offset_step]
    particle_diameter_angstrom: float | None = None  # [--particle_diameter]
    class_inactivity_threshold: float = 0.1  # [--class_inactivity_threshold] (RELION 4)
    engine: str = "em"  # "hps": each image at its best pose (hierarchical pose search)
    hps_keep: int = 24
    representation: str = "grid"  # "neural": a Fourier-feature coordinate MLP (cryoDRGN2)
    neural_width: int = 128
    neural_steps: int = 16  # Adam passes over each minibatch (4: 32 A on the demo, 16: 11 A)
    neural_learning_rate: float = 3e-3
    neural_replay: int = 1  # the field fits the last this many minibatches (their last poses)
    halves: bool = False  # two independent runs on random halves (inference.abinitio_halves)
    seed: int = 0  # [--random_seed]
    batch_size: int = 128  # images per expectation batch (memory, not the minibatch)

    def check(self) -> None:
        checks = [
            ("classes", self.classes >= 1),
            ("iterations", self.iterations >= 1),
            ("initial_batch", 1 <= self.initial_batch <= self.final_batch),
            ("final_batch", self.final_batch >= 1),
            ("initial_resolution_angstrom",
             self.initial_resolution_angstrom >= self.final_resolution_angstrom > 0),
            ("learning_rate", 0 < self.learning_rate <= 1),
            ("momentum", 0 <= self.momentum < 1),
            ("class_inactivity_threshold", 0 <= self.class_inactivity_threshold < 1),
            ("healpix_order", 0 <= self.healpix_order <= 4),
            ("offset_range_px", self.offset_range_px >= 0),
            ("offset_step_px", self.offset_step_px > 0),
            ("hps_keep", self.hps_keep >= 1),
            ("neural_width", self.neural_width >= 1),
            ("neural_steps", self.neural_steps >= 1),
            ("neural_learning_rate", self.neural_learning_rate > 0),
            ("neural_replay", self.neural_replay >= 1),
            ("batch_size", self.batch_size >= 1),
        ]  # fmt: skip
        for name, choices in (("engine", ENGINES), ("representation", REPRESENTATIONS)):
            if getattr(self, name) not in choices:
                raise InvalidInputError(f"{name} must be one of {', '.join(choices)}, got "
                                        f"{getattr(self, name)!r}")  # fmt: skip
        check_settings(self, checks)
        if self.halves and self.classes != 1:  # the halves' classes need not pair up
            raise InvalidInputError("independent halves take one class (--classes 1)")


@dataclass
class AbInitioState:
    """Everything an interrupted run needs to continue (the checkpoint)."""

    iteration: int
    maps: torch.Tensor  # (K, n, n, n)
    voxel_size_angstrom: float
    step: torch.Tensor  # (K, n_pad, n_pad, n_pad // 2 + 1) complex: the momentum dS (grid)
    curvature: torch.Tensor  # (K, n_pad, n_pad, n_pad // 2 + 1): the running mean P of W
    class_fractions: np.ndarray
    noise: NoiseSpectrum
    particles: ParticleState
    history: list[dict] = field(default_factory=list)
    snapshots: dict = field(default_factory=dict)  # iteration -> (K, 3, n, n) central slices
    fields: list[NeuralVolume] | None = None  # representation "neural": the K maps
    settings: AbInitioSettings | None = None  # those it started with: its schedule (--continue)


def run_fraction(settings: AbInitioSettings, iteration: int) -> float:
    """How far ``iteration`` (0-based) is through the planned run: 0 to 1, and 1 past it (a
    run continued beyond its planned ``iterations``)."""
    return min(iteration / max(settings.iterations - 1, 1), 1.0)


def schedule(settings: AbInitioSettings, iteration: int, n: int, voxel: float):
    """``(minibatch size, last shell scored)`` of ``iteration`` (0-based): both linear in
    :func:`run_fraction`, so the last ones past the planned run."""
    t = run_fraction(settings, iteration)
    size = round(settings.initial_batch + (settings.final_batch - settings.initial_batch) * t)
    first = shell_of(settings.initial_resolution_angstrom, n, voxel)
    last = shell_of(settings.final_resolution_angstrom, n, voxel)
    shell = round(first + (last - first) * t)
    return size, min(max(shell, 2), n // 2 - 1)


def minibatch(settings: AbInitioSettings, n_particles: int, iteration: int, n: int,
              voxel: float) -> np.ndarray:  # fmt: skip
    """The sorted rows of ``iteration``'s minibatch: seeded by ``(seed, iteration)``."""
    size = schedule(settings, iteration, n, voxel)[0]
    rng = np.random.default_rng([settings.seed, iteration])
    return np.sort(rng.choice(n_particles, size, replace=False))


def recent_rows(settings: AbInitioSettings, n_particles: int, iteration: int, count: int,
                n: int, voxel: float) -> np.ndarray:  # fmt: skip
    """The sorted rows of the minibatches of ``iteration`` and the ``count - 1`` before it."""
    first = max(iteration - count + 1, 0)
    return np.unique(np.concatenate([minibatch(settings, n_particles, i, n, voxel)
                                     for i in range(first, iteration + 1)]))  # fmt: skip


def start_abinitio(table, settings: AbInitioSettings, dtype=torch.float32, device=None):
    """The state before iteration 1: K seeded random-pose reconstructions (module docstring),
    the noise from the background."""
    settings.check()
    table.require("ctf", "pixel_size_angstrom", "image_size", purpose="ab initio")
    n = int(np.max(table.image_size))
    voxel = float(np.asarray(table.pixel_size_angstrom).reshape(-1)[0])
    if settings.final_batch > table.n:
        raise InvalidInputError(
            f"the minibatch grows to {settings.final_batch} particles; there are {table.n}"
        )
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel)
    noise = estimate_noise_from_background(
        iter_batches(table, settings.batch_size, device, torch.float64, use_ctf=False), radius
    )
    rng = np.random.default_rng(settings.seed)
    maps = []
    for k in range(settings.classes):
        rows = rng.choice(table.n, settings.initial_batch, replace=False)
        poses = random_rotations(table.n, settings.seed * 1000 + k).numpy()
        maps.append(reconstruction(table, rows, poses, np.zeros((table.n, 2)), settings,
                                    settings.initial_resolution_angstrom, device))  # fmt: skip
    maps = torch.stack(maps).to(dtype).cpu()  # the state lives on the host between iterations
    fields = None
    if settings.representation == "neural":
        fields = neural_start(table, maps, settings, dtype, device)
        first = shell_of(settings.initial_resolution_angstrom, n, voxel)
        maps = torch.stack([constrained(f.volume(first), radius) for f in fields]).to(dtype).cpu()
    # the grid's momentum and curvature (a neural map has Adam's moments in its field instead)
    shape = (settings.classes, *((2 * n, 2 * n, n + 1) if fields is None else (0,)))
    particles = ParticleState.start(np.tile(np.eye(3), (table.n, 1, 1)), np.zeros((table.n, 2)),
                                    np.zeros(table.n, np.int64))  # fmt: skip
    fractions = np.full(settings.classes, 1 / settings.classes)
    return AbInitioState(0, maps, voxel, torch.zeros(shape, dtype=torch.complex128),
                         torch.zeros(shape, dtype=torch.float64), fractions, noise,
                         particles, fields=fields, settings=settings)  # fmt: skip


def abinitio_iteration(table, state: AbInitioState, settings: AbInitioSettings,
                       dtype=torch.float32, device=None, progress=None) -> dict:  # fmt: skip
    """One minibatch step; updates ``state`` in place and returns the iteration's log line."""
    k_classes, n = state.maps.shape[0], state.maps.shape[-1]
    voxel = state.voxel_size_angstrom
    size, shell = schedule(settings, state.iteration, n, voxel)
    rows = minibatch(settings, table.n, state.iteration, n, voxel)
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel)
    mask = spherical_mask((n, n, n), radius, 3.0, dtype=state.maps.dtype, device=device)
    # an ab initio pass searches every offset about the box centre, not about a wrong guess
    state.particles.shifts_px[rows] = 0.0
    if settings.engine == "hps":
        sums = best_pose_sums(table, rows, state, settings, shell, dtype, device, progress)
    else:
        sums = PassSums({})
        log_fractions = np.log(np.maximum(state.class_fractions, 1e-12))
        refs = References(state.maps.to(device) * mask, voxel,
                          torch.as_tensor(log_fractions, dtype=dtype, device=device))  # fmt: skip
        sampling = Sampling(settings.healpix_order, False, settings.offset_range_px,
                            settings.offset_step_px, shell)  # fmt: skip
        group = torch.eye(3, dtype=torch.float64, device=device)[None]
        expectation_pass(table, rows, np.ones(table.n, np.int64), refs, state.particles,
                         sampling, state.noise, sums, offset_sigma_px=max(
                             settings.offset_range_px / 2, 0.5), group=group,
                         batch_size=settings.batch_size, dtype=dtype, device=device,
                         progress=progress)  # fmt: skip
    if state.fields is not None:
        seen = recent_rows(settings, table.n, state.iteration, settings.neural_replay, n, voxel)
        moved = [neural_step(table, seen, state, k, settings, shell, radius, dtype, device)
                 for k in range(k_classes)]  # fmt: skip
    else:  # an empty class keeps its map and momentum
        moved = [0.0 if (k, 1) not in sums.accumulators else
                 grid_step(state, k, sums.accumulators[(k, 1)], settings, radius)
                 for k in range(k_classes)]  # fmt: skip
    reset = None
    if settings.engine == "em":
        mass = sums.class_mass / max(sums.class_mass.sum(), 1e-300)
        state.class_fractions = 0.5 * state.class_fractions + 0.5 * mass
        if state.fields is None:
            reset = _reset_inactive_class(table, state, settings, n * voxel / shell, device)
    state.iteration += 1
    line = {
        "iteration": state.iteration,
        "particles": size,
        "max_shell": shell,
        "resolution_angstrom": n * voxel / shell,
        "mean_max_probability": float(state.particles.max_probability[rows].mean()),
        "mean_log_likelihood": float(state.particles.log_likelihood[rows].mean()),
        "relative_change": moved,
        "reset_class": reset,
        "class_fractions": state.class_fractions.tolist(),
    }
    state.history.append(line)
    every = max(1, settings.iterations // 6)
    if state.iteration % every == 0 or state.iteration == settings.iterations:
        state.snapshots[state.iteration] = central_slices(state.maps)
    return line


def central_slices(maps: torch.Tensor) -> np.ndarray:
    """``(K, 3, n, n)``: each map's central z, y and x planes."""
    c = maps.shape[-1] // 2
    planes = [maps[:, c], maps[:, :, c], maps[:, :, :, c]]
    return torch.stack(planes, 1).float().cpu().numpy()


def _reset_inactive_class(table, state: AbInitioState, settings: AbInitioSettings,
                          resolution_angstrom: float, device):  # fmt: skip
    """RELION 4's rule for K classes by gradients (mlo ``class_inactivity_threshold``): between
    the first and the last sixth of the run (RELION 3.1's 50/200/50 phases), a class whose
    fraction falls below ``class_inactivity_threshold / K`` restarts. RELION restarts it as a
    copy of the class whose gradient carries the most error; two identical maps then split
    that class's particles at random (measured: they did not part by molecule). Here it
    restarts from what the largest class explains worst: the largest class's particles of the
    last three minibatches with the lowest log-likelihood, one in K of them, reconstructed
    at their poses to the current band; no momentum; the two classes share the fraction.
    Returns ``[restarted, from]`` (1-based), or None."""
    k_classes, n = len(state.class_fractions), state.maps.shape[-1]
    t = run_fraction(settings, state.iteration)
    if k_classes < 2 or not 1 / 6 <= t <= 5 / 6:
        return None
    low, high = int(np.argmin(state.class_fractions)), int(np.argmax(state.class_fractions))
    if state.class_fractions[low] >= settings.class_inactivity_threshold / k_classes:
        return None
    p = state.particles
    recent = recent_rows(settings, table.n, state.iteration, 3, n, state.voxel_size_angstrom)
    mine = recent[p.classes[recent] == high]
    worst = mine[np.argsort(p.log_likelihood[mine])[: len(mine) // k_classes]]
    if len(worst) == 0:
        return None
    volume = reconstruction(table, np.sort(worst), p.rotations, p.shifts_px, settings,
                             resolution_angstrom, device)  # fmt: skip
    state.maps[low] = volume.to(state.maps.dtype).cpu()
    state.step[low], state.curvature[low] = 0, state.curvature[high]
    state.class_fractions[[low, high]] = state.class_fractions[high] / 2
    state.class_fractions /= state.class_fractions.sum()
    return [low + 1, high + 1]
