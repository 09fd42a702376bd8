"""3-D classification (RELION's ``relion_refine --K``): K maps, each particle's class, pose and
offset by expectation-maximisation at a fixed sampling.

Start: one initial map per class (RELION's ``--ref`` with K maps), or K copies of one; each
low-passed and put on the images' greyscale (``refine.start_refinement``). From copies, the
first iteration scores each particle against one random class only (RELION's random assignment
of a first iteration: identical references would otherwise stay identical). Each iteration: one
expectation pass against all K maps (global HEALPix search with oversampling, local around
the previous poses, or none: each particle's own pose and offset, RELION's ``--skip_align``),
the maps under the particle's soft sphere or the user's solvent mask (with ``--skip_align``,
RELION's focused classification), then per class the M-step of ``refine``: its particles' two
random halves inverted with the class's previous FSC as the prior, their FSC, and the class map
from both halves' sums. A class that lost all its particles keeps its map. The band is the
shells up to the best class's FSC 0.5 resolution plus 10; the class fractions, the noise and
the offset sd are updated.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.imaging import NoiseSpectrum
from cryomath.inference.expectation import (
    ParticleState,
    PassSums,
    References,
    expectation_pass,
    merged_noise,
    offset_sigma,
    particle_radius_px,
)
from cryomath.inference.refine import RefineSettings, solvent_mask_or_sphere, start_refinement
from cryomath.inference.refine_rules import sampling_for, shell_of
from cryomath.reconstruction.direct import invert
from cryomath.reconstruction.halves import fourier_average_fsc
from cryomath.resolution import resolution_angstrom
from cryomath.so3.symmetry import point_group


@dataclass
class Class3DSettings:
    """K, the iterations, whether searches are local, and the rest as ``RefineSettings``
    (``healpix_order`` is the fixed sampling; its ``solvent_mask``, RELION's
    ``--solvent_mask``, multiplies the references instead of the particle's sphere; its
    ``auto_mask`` is refine's only). ``skip_align`` (RELION's ``--skip_align``): each particle
    keeps its pose and offset, only its class is found; with a solvent mask, focused
    classification of the region it covers."""

    n_classes: int
    iterations: int = 25
    local: bool = False
    seed: int = 0
    search: RefineSettings = field(default_factory=RefineSettings)
    skip_align: bool = False

    def check(self) -> None:
        if self.n_classes < 1 or self.iterations < 1:
            raise InvalidInputError("classes and iterations must be at least 1")
        if self.local and self.skip_align:
            raise InvalidInputError("--local searches poses; --skip-align keeps them: not both")
        self.search.check()


@dataclass
class Class3DState:
    """Everything an interrupted classification needs to continue."""

    iteration: int
    maps: torch.Tensor  # (K, n, n, n)
    voxel_size_angstrom: float
    particles: ParticleState
    halves: np.ndarray
    noise: NoiseSpectrum
    offset_sigma_px: float
    fractions: np.ndarray
    band_shell: int
    copies: bool = True  # the classes started as copies of one map
    fsc: torch.Tensor | None = None  # (K, shells)
    group_scales: dict = field(default_factory=dict)  # optics group -> amplitude scale
    history: list[dict] = field(default_factory=list)


def start_class3d(
    table, references: torch.Tensor, voxel_size_angstrom: float, settings: Class3DSettings,
    dtype=torch.float32, device=None,
) -> Class3DState:  # fmt: skip
    """The prepared initial maps ``references (K or 1, n, n, n)`` and the particles' starting
    state (local searches start from the particles' poses, e.g. a refinement's)."""
    settings.check()
    if settings.local or settings.skip_align:
        purpose = "local searches" if settings.local else "--skip-align"
        table.require("rotations", purpose=f"3-D classification with {purpose}")
    k = settings.n_classes
    references = references.reshape(-1, *references.shape[-3:])
    if len(references) not in (1, k):
        raise InvalidInputError(f"{len(references)} initial maps for {k} classes: give 1 or {k}")
    starts = [start_refinement(table, r, voxel_size_angstrom, settings.search, dtype, device)
              for r in references]  # fmt: skip
    maps = torch.stack([s.maps[0] for s in starts]).expand(k, -1, -1, -1).clone()
    first = starts[0]
    if settings.local or settings.skip_align:
        first.particles.rotations[:] = table.rotations
    return Class3DState(
        0, maps, voxel_size_angstrom, first.particles, first.halves, first.noise,
        first.offset_sigma_px, np.full(k, 1 / k), first.band_shell, copies=len(references) == 1,
    )  # fmt: skip


def class3d_iteration(
    table, state: Class3DState, settings: Class3DSettings, dtype=torch.float32, device=None,
    progress=None, passes=expectation_pass,
) -> dict:  # fmt: skip
    """One iteration (module docstring); updates ``state`` and returns its log line.
    ``passes`` runs each expectation pass (``expectation_pass``, or the pipelines' Dask
    version with its signature)."""
    k, n = settings.n_classes, state.maps.shape[-1]
    voxel, search = state.voxel_size_angstrom, settings.search
    radius = particle_radius_px(search.particle_diameter_angstrom, n, voxel)
    mask = solvent_mask_or_sphere(search, n, radius, state.maps.dtype, device)
    prior = torch.log(torch.as_tensor(state.fractions, dtype=dtype, device=device).clamp(1e-30))
    refs = References(state.maps.to(device) * mask, voxel, prior)
    sampling = sampling_for(search, search.healpix_order, search.offset_range_px,
                            search.offset_step_px, state.band_shell, n, voxel)  # fmt: skip
    sampling = replace(sampling, local=settings.local)
    if settings.skip_align:
        sampling = replace(sampling, local=True, align=False, offset_range_px=0.0)
    first = None
    if state.iteration == 0 and k > 1 and state.copies:  # each against one random class
        chosen = np.random.default_rng(settings.seed).integers(0, k, table.n)
        first = np.full((table.n, k), -np.inf)
        first[np.arange(table.n), chosen] = 0.0
    sums = PassSums({}, compiled=search.compiled_insertion)
    passes(
        table, np.arange(table.n), state.halves, refs, state.particles, sampling, state.noise,
        sums, offset_sigma_px=state.offset_sigma_px,
        group=point_group(search.symmetry, dtype=torch.float64, device=device),
        batch_size=search.batch_size, dtype=dtype, device=device, progress=progress,
        image_class_prior=first, group_scales=state.group_scales,
    )  # fmt: skip
    if search.scale_correction:
        state.group_scales = sums.group_scales()
    maps, curves = state.maps.clone(), torch.zeros((k, n // 2 + 1), dtype=torch.float64)
    for c in range(k):
        held = [sums.accumulators.get((c, h)) for h in (1, 2)]
        if any(acc is None or not bool((acc.weights > 0).any()) for acc in held):
            continue  # a class without particles in both halves keeps its map
        maps[c], curves[c] = _class_map(sums, c, state, voxel, search.tau2_fudge)
    state.maps, state.fsc = maps.cpu(), curves
    mass = sums.class_mass
    state.fractions = np.maximum(mass / max(mass.sum(), 1e-30), 1e-6)
    state.fractions /= state.fractions.sum()
    state.noise = merged_noise(state.noise, sums.noise.result(), state.band_shell)
    state.offset_sigma_px = max(offset_sigma(sums), 0.5)
    state.iteration += 1
    line = _log_line(state, voxel)
    best = min(line["class_resolution_05_angstrom"])
    state.band_shell = min(n // 2 - 1, max(state.band_shell, shell_of(best, n, voxel) + 10))
    state.history.append(line)
    return line


def _class_map(sums: PassSums, c: int, state: Class3DState, voxel: float, tau2_fudge: float):
    """Class ``c``'s map (both halves' sums, regularised by their FSC) and that FSC (the
    halves' Fourier averages', as refine's: ``reconstruction.fourier_average_fsc``)."""
    joined, other = sums.accumulators[(c, 1)], sums.accumulators[(c, 2)]
    curve = fourier_average_fsc(joined, other, voxel).fsc.double().cpu()
    curve[state.band_shell + 1 :] = 0
    joined.merge(other)
    full = invert(joined, half_map_fsc=curve.to(joined.weights), tau2_fudge=tau2_fudge)
    return full.cpu(), curve


def class_resolutions(state: Class3DState, criterion: float) -> list[float]:
    """Each class's resolution (A) at the FSC ``criterion`` between its halves."""
    from cryomath.resolution import FSCCurve

    n, voxel = state.maps.shape[-1], state.voxel_size_angstrom
    shells = torch.arange(n // 2 + 1, dtype=torch.float64)
    out = []
    for curve in state.fsc:
        if not curve.any():
            out.append(math.inf)
            continue
        fsc = FSCCurve(curve, shells / (n * voxel), torch.ones_like(curve))
        out.append(resolution_angstrom(fsc, criterion))
    return out


def _log_line(state: Class3DState, voxel: float) -> dict:
    return {
        "iteration": state.iteration,
        "class_fractions": state.fractions.tolist(),
        "class_resolution_0143_angstrom": class_resolutions(state, 0.143),
        "class_resolution_05_angstrom": class_resolutions(state, 0.5),
        "band_shell": state.band_shell,
        "mean_max_probability": float(state.particles.max_probability.mean()),
        "offset_sigma_px": state.offset_sigma_px,
    }
