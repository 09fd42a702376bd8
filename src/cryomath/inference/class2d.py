"""2-D classification (RELION's ``relion_refine`` without ``--ref``, Scheres 2012): K class
averages, each image's class, in-plane angle and offset by expectation-maximisation.

Start: every image gets a seeded random class and in-plane angle (offsets from the table, else
0) and the first averages are the M-step of those assignments. Each iteration: the averages
(masked by a soft circle of the particle's radius) rotated by every in-plane angle of the grid
are the shared hypotheses of ``expectation_pass``; the M-step puts each image, with its
posterior weights, back into its class at the inverse rotations (``projection.planar``) and
divides, regularised per ring by the FRC between the class's two halves of particles (RELION's
tau2 from the data, as ``reconstruction.invert``); the class fractions, the noise spectrum and
the offset sd are updated; the band (RELION's ``current_size``) is the rings up to the best
class resolution (FRC 0.143) plus 10. ``fast_subsets`` (RELION's ``--fast_subsets``): the
first iterations use growing random subsets of the particles (10 %, 30 %, 100 %).
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, estimate_noise_from_background, iter_batches
from cryomath.inference.expectation import (
    ParticleState,
    PassSums,
    expectation_pass,
    merged_noise,
    offset_sigma,
    particle_radius_px,
)
from cryomath.inference.global_search import with_image_prior
from cryomath.inference.sampling import Sampling
from cryomath.inference.sums import PoseSums
from cryomath.projection.planar import (
    accumulate_rotated_rfft_2d,
    invert_planar,
    planar_poses,
    prepare_images,
    rotate_spectra_rfft_2d,
)
from cryomath.resolution import fourier_shell_correlation


@dataclass
class Class2DSettings:
    """The user's choices (RELION's option names in brackets)."""

    n_classes: int  # [--K]
    iterations: int = 25  # [--iter]
    psi_step_degrees: float = 6.0  # [--psi_step]
    offset_range_px: float = 5.0  # [--offset_range]
    offset_step_px: float = 1.0  # [--offset_step]
    particle_diameter_angstrom: float | None = None  # [--particle_diameter]; default 90 % box
    initial_band_shell: int = 10
    fast_subsets: bool = False  # [--fast_subsets]
    tau2_fudge: float = 1.0  # [--tau2_fudge]: the signal power's multiplier in the prior
    scale_correction: bool = True  # [--scale]: an amplitude scale per optics group
    dose_e_per_a2: float | None = None  # Poisson scores of counting images; no --scale then
    batch_size: int = 256
    seed: int = 0  # [--random_seed]

    def check(self) -> None:
        if self.n_classes < 1 or self.iterations < 1 or self.batch_size < 1:
            raise InvalidInputError("classes, iterations and batch size must be at least 1")
        if not self.tau2_fudge > 0:
            raise InvalidInputError(f"tau2_fudge must be positive, got {self.tau2_fudge}")
        if self.dose_e_per_a2 is not None and not self.dose_e_per_a2 > 0:
            raise InvalidInputError(f"the dose must be positive, got {self.dose_e_per_a2}")
        if not 0.1 <= self.psi_step_degrees <= 180:
            raise InvalidInputError("the in-plane step must be in [0.1, 180] degrees")


@dataclass
class Class2DState:
    """Everything an interrupted classification needs to continue."""

    iteration: int
    averages: torch.Tensor  # (K, n, n)
    pixel_size_angstrom: float
    particles: ParticleState
    halves: np.ndarray
    noise: NoiseSpectrum
    offset_sigma_px: float
    fractions: np.ndarray  # (K,)
    frc: torch.Tensor | None = None  # (K, rings)
    band_shell: int = 10
    group_scales: dict = field(default_factory=dict)  # optics group -> amplitude scale
    history: list[dict] = field(default_factory=list)


class PlanarSearch:
    """``expectation_pass``'s shared hypotheses for 2-D classes: every average at every
    in-plane angle; the M-step's sums go back through the adjoint rotation. (The interface of
    ``global_search.GlobalSearch``: ``n_classes``, ``log_class_prior``, the sizes
    ``hypotheses_per_image`` and ``own_projections_per_image``, ``hypotheses``, ``insert``.)"""

    def __init__(self, averages: torch.Tensor, psi_degrees: torch.Tensor, fractions, dtype):
        n = averages.shape[-1]
        self.psi, self.n_classes, self.n = psi_degrees, averages.shape[0], n
        item = 2 * torch.empty((), dtype=dtype).element_size()
        count = self.n_classes * len(psi_degrees)
        check_memory(item * count * n * (n // 2 + 1), f"{count} rotated class averages",
                     averages.device)  # fmt: skip
        self.poses = planar_poses(psi_degrees)
        spectra = rotate_spectra_rfft_2d(
            prepare_images(averages.to(psi_degrees.device, dtype)), n, psi_degrees.to(dtype)
        )
        self.projections = spectra.flatten(0, 1)  # (K P, n, n // 2 + 1)
        self.hypotheses_per_image, self.own_projections_per_image = count, 0
        self.log_class_prior = torch.log(torch.as_tensor(fractions, dtype=dtype).clamp(min=1e-30))

    def hypotheses(self, batch, shifts, prior_shift, noise, image_prior=None):
        prior = self.log_class_prior.to(batch.device).repeat_interleave(len(self.psi))
        return (
            self.projections.to(batch.device),
            None,
            with_image_prior(prior, image_prior, len(self.psi)),
        )

    def insert(self, pose_sum: PoseSums, half: int, sums: PassSums) -> None:
        data, weights = pose_sum.spectra()
        m = 2.0 * torch.ones(data.shape[-1], dtype=weights.dtype, device=weights.device)
        m[0] = 1.0
        if self.n % 2 == 0:
            m[-1] = 1.0  # Hermitian multiplicity: each rfft sample counts with its mate
        shape = (self.n_classes, len(self.psi), *data.shape[1:])
        if half not in sums.accumulators:
            n_pad = 2 * self.n
            sums.accumulators[half] = weights.new_zeros((self.n_classes, 3, n_pad, n_pad // 2 + 1))
        accumulate_rotated_rfft_2d(sums.accumulators[half], (data * m).reshape(shape),
                                   (weights * m).reshape(shape), self.psi.to(weights))  # fmt: skip


def _psi_grid(settings: Class2DSettings, dtype, device) -> torch.Tensor:
    count = max(1, round(360 / settings.psi_step_degrees))
    return torch.arange(count, dtype=dtype, device=device) * (360.0 / count)


def start_class2d(table, settings: Class2DSettings, dtype=torch.float32, device=None):
    """Random assignments (seeded) and the averages they make; the noise from the images'
    background."""
    settings.check()
    table.require("pixel_size_angstrom", "image_size", purpose="2-D classification")
    n, pixel = int(table.image_size[0]), float(table.pixel_size_angstrom[0])
    if settings.n_classes > table.n:
        raise InvalidInputError(f"{settings.n_classes} classes need at least as many particles")
    rng = np.random.default_rng(settings.seed)
    classes = rng.integers(0, settings.n_classes, table.n)
    psi = _psi_grid(settings, torch.float64, None)
    rotations = planar_poses(psi[rng.integers(0, len(psi), table.n)]).numpy()
    shifts = np.zeros((table.n, 2))
    if table.origins_angstrom is not None:
        shifts = -table.origins_angstrom / np.asarray(table.pixel_size_angstrom)[:, None]
    noise = estimate_noise_from_background(
        iter_batches(table, settings.batch_size, device, torch.float64, use_ctf=False),
        particle_radius_px(settings.particle_diameter_angstrom, n, pixel),
    )
    state = Class2DState(
        0, torch.zeros((settings.n_classes, n, n), dtype=dtype), pixel,
        ParticleState.start(rotations, shifts, classes),
        rng.permutation(table.n) % 2 + 1, noise, max(settings.offset_range_px / 3, 0.5),
        np.full(settings.n_classes, 1 / settings.n_classes),
        band_shell=min(settings.initial_band_shell, n // 2 - 1),
    )  # fmt: skip
    state.averages = _averages_of_assignments(table, state, settings, dtype, device).cpu()
    return state


def _averages_of_assignments(table, state, settings, dtype, device) -> torch.Tensor:
    """The M-step of the current hard assignments (class, angle, offset): each image, centred
    on its offset, with weight 1 at its (class, angle)."""
    n = state.averages.shape[-1]
    psi = _psi_grid(settings, dtype, device)
    search = PlanarSearch(state.averages, psi, state.fractions, dtype)
    angle = np.degrees(np.arctan2(state.particles.rotations[:, 0, 1],
                                  state.particles.rotations[:, 0, 0]))  # fmt: skip
    index = np.round((angle % 360) / (360 / len(psi))).astype(np.int64) % len(psi)
    column = torch.as_tensor(state.particles.classes * len(psi) + index, device=device)
    sums = PassSums({})
    pose_sum = PoseSums(settings.n_classes * len(psi), n, n // 2 - 1, dtype, device)
    for batch in iter_batches(table, settings.batch_size, device, dtype):
        rows = batch.indices
        shift = torch.as_tensor(state.particles.shifts_px[rows.cpu().numpy()], dtype=dtype,
                                device=batch.device)  # fmt: skip
        centred = replace(batch, spectra=batch.spectra * phase_ramp((n, n), -shift, rfft=True))
        hot = torch.zeros((len(batch), 1, pose_sum.data.shape[0]), dtype=dtype, device=device)
        hot[torch.arange(len(batch)), 0, column[rows]] = 1
        pose_sum.add(centred, hot, torch.zeros((1, 2), dtype=dtype, device=device))
    search.insert(pose_sum, 0, sums)
    return invert_planar(sums.accumulators[0], n)


def class2d_iteration(
    table, state: Class2DState, settings: Class2DSettings, dtype=torch.float32, device=None,
    progress=None, passes=expectation_pass,
) -> dict:  # fmt: skip
    """One iteration (module docstring); updates ``state`` and returns its log line.
    ``passes`` runs each expectation pass (``expectation_pass``, or the pipelines' Dask
    version with its signature)."""
    n, pixel = state.averages.shape[-1], state.pixel_size_angstrom
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, pixel)
    mask = spherical_mask((n, n), radius, 3.0, dtype=dtype)
    psi = _psi_grid(settings, dtype, device)
    search = PlanarSearch(state.averages.to(device) * mask.to(device), psi, state.fractions, dtype)
    sampling = Sampling(0, False, settings.offset_range_px, settings.offset_step_px,
                        state.band_shell, oversample=False,
                        dose_e_per_a2=settings.dose_e_per_a2)  # fmt: skip
    rows = _subset(table.n, state.iteration, settings)
    sums = PassSums({})
    passes(
        table, rows, state.halves, None, state.particles, sampling, state.noise, sums,
        offset_sigma_px=state.offset_sigma_px, group=torch.eye(3, dtype=torch.float64)[None],
        batch_size=settings.batch_size, dtype=dtype, device=device, progress=progress,
        search=search, group_scales=state.group_scales,
    )  # fmt: skip
    if settings.scale_correction:
        state.group_scales = sums.group_scales()
    halves = [sums.accumulators.get(h) for h in (1, 2)]
    halves = [h if h is not None else torch.zeros_like(halves[0] if halves[0] is not None
                                                       else halves[1]) for h in halves]  # fmt: skip
    maps = [invert_planar(h, n, state.frc, settings.tau2_fudge) for h in halves]
    frc = _class_frc(maps[0], maps[1], pixel)
    frc[:, state.band_shell + 1 :] = 0
    state.averages = invert_planar(halves[0] + halves[1], n, frc, settings.tau2_fudge).cpu()
    state.frc = frc.cpu()
    state.fractions = np.maximum(sums.class_mass / max(sums.class_mass.sum(), 1e-30), 1e-6)
    state.fractions /= state.fractions.sum()
    state.noise = merged_noise(state.noise, sums.noise.result(), state.band_shell)
    state.offset_sigma_px = max(offset_sigma(sums), 0.5)
    state.iteration += 1
    resolution = class_resolutions(state)
    best = min(resolution)
    shell = 0 if not math.isfinite(best) else int(n * pixel / best)
    state.band_shell = min(n // 2 - 1, max(state.band_shell, shell + 10))
    line = {
        "iteration": state.iteration,
        "particles": len(rows),
        "band_shell": state.band_shell,
        "class_fractions": state.fractions.tolist(),
        "class_resolution_angstrom": resolution,
        "mean_max_probability": float(state.particles.max_probability[rows].mean()),
        "offset_sigma_px": state.offset_sigma_px,
    }
    state.history.append(line)
    return line


def class_resolutions(state: Class2DState) -> list[float]:
    """Each class's resolution (A) where its half-set FRC falls below 0.143."""
    n, pixel = state.averages.shape[-1], state.pixel_size_angstrom
    out = []
    for curve in state.frc:
        below = (curve[1:] < 0.143).nonzero()
        ring = int(below[0]) if len(below) else len(curve) - 1
        out.append(math.inf if ring == 0 else n * pixel / ring)
    return out


def _subset(n: int, iteration: int, settings: Class2DSettings) -> np.ndarray:
    if not settings.fast_subsets or iteration >= 2:
        return np.arange(n)
    share = (0.1, 0.3)[iteration]
    rng = np.random.default_rng(settings.seed + 1 + iteration)
    return np.sort(rng.permutation(n)[: max(settings.n_classes, int(share * n))])


def _class_frc(half1: torch.Tensor, half2: torch.Tensor, pixel: float) -> torch.Tensor:
    """``(K, rings)`` FRC of each class's two half averages (0 for a class a half lacks)."""
    rings = half1.shape[-1] // 2 + 1
    out = torch.zeros((len(half1), rings), dtype=torch.float64)
    for k, (a, b) in enumerate(zip(half1, half2, strict=True)):
        if bool((a != 0).any()) and bool((b != 0).any()):
            curve = fourier_shell_correlation(a, b, pixel, ndim=2).fsc
            out[k, : len(curve)] = torch.nan_to_num(curve.double().cpu())[:rings]
    return out
