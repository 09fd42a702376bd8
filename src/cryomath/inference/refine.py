"""3-D auto-refinement (RELION's ``relion_refine --auto_refine --split_random_halves``):
gold-standard halves refined independently from one initial map, their Fourier components
joined below ``join_below_angstrom``, the sampling made finer by RELION's rules.

Each iteration: an expectation pass per half against that half's map (``expectation_pass``),
then the M-step: each half map by direct inversion regularised per shell from the previous
iteration's gold-standard FSC (RELION's tau2 from the FSC), the halves joined at low
resolution, the noise spectrum (within the band searched), the offset prior's sd. The
gold-standard FSC is RELION's: between the halves' unregularised Fourier averages
(``reconstruction.fourier_average_fsc``), not the regularised half maps, whose shells the
prior had shrunk to nearly zero held the leak of the shared low resolutions through the box's
crop and mask (0.4-0.6 on independent halves), which fed back into the next prior. The band searched
(RELION's ``current_size``): the shells up to the FSC 0.5 resolution plus 10; a global
search's coarse pass scores only the shells its step resolves (RELION's ``coarse_size``,
``sampling.coarse_shell``: shell 11 for the 15-degree parents at box 64), its children the whole
band. (A single 7.5-degree grid scored to shell 6 put 23 % of 2,000 images of SNR 0.05 more
than 30 degrees off, 2.5 % to shell 23; on the sharpened dataset (b) of issue 16, without
RELION's keepsafe factor, shell 8 lost 20 % of the particles and gave a 4.1 A map, shell 11
17.5 % and 3.4 A: bench/RESULTS.md.)
The reported resolution is at FSC 0.143.

The sampling rules (RELION's, with two departures) are ``inference.refine_rules``'s. The
final map is the inversion of both halves' sums together, regularised by their FSC (the
joined reconstruction).

The references' mask (``reference_mask``): by default the automatic mask
(``resolution.automatic_mask``: the map low-passed to 15 A, thresholded at its mean + 2.5 sd,
extended 3 px with a 6 px soft edge, as ``relion_mask_create`` makes it) of the last
iteration's joined map, remade every iteration, inside the particle's sphere: cryoSPARC's
dynamic mask. The mask is made from both halves together, as cryoSPARC's, but holds only
their shape at 15 A, and the gold-standard FSC is still that of the halves' unmasked Fourier
averages, which no mask touches. Each image then meets less of its reference's
noise from the solvent: on 2,000 N-domain particles of SNR 0.05 (20 kDa in a 72 A box, the
mask 46 % of the sphere's volume) the median pose error went from 7.1 to 5.5 degrees and the
map against the truth from 4.47 to 4.11 A; on issue 16's dataset (a) (5,000 particles) the
error went from 1.65 to 1.37 degrees, in 9 iterations instead of 14 and half the time
(bench/RESULTS.md). On the sharpened dataset (b) it also lowers the error (1.68 to 1.37
degrees) and gives the same map (3.35 against 3.34 A against the truth once each map's frame
and origin, which no data fix, are the truth's). Leaving out the image's group still
helps under the mask (5.5 against 5.6 degrees, 4.11 against 4.18 A with RELION's own half
map). ``auto_mask`` off (``--no-auto-mask``) gives RELION's soft sphere; ``solvent_mask``
(``--solvent-mask``, RELION's ``--solvent_mask``) a mask of the user's.

``global_recheck`` (``--global-recheck``; RELION has no such rule, cryoSPARC searches globally
every iteration): where the refinement would converge, one more global pass at
``healpix_order`` against the final half maps, then local searches again from
``local_from_order`` until the rules converge once more. Particles lost while the maps were
poor are found at their true poses once the maps are good: on dataset (b) of issue 16 at
5,000 particles it leaves 7.5 % more than 30 degrees off instead of 17.5 %, for a third more
time; on 2,000 N-domain particles of SNR 0.05, whose lost particles are the data's limit, it
only costs time (bench/RESULTS.md). Off by default.

Local searches score each image against its half's map *without its own group*
(``leave_out_groups`` G, default 8; 1 gives RELION's own half map; ``inference.leave_out``
says why): group g's reference is the half's sums less group g's, inverted with the same FSC
prior and joined at low resolution with the other half. The first local iteration uses the half
maps: the global passes are not split (each group would project the whole grid; on 2,000
particles that took 60 % longer for the same poses, bench/RESULTS.md); each iteration's log
line says how many groups it used (fewer where memory is short).

Local searches start at order 3 by default, one order before RELION's: a global order-3 pass
with oversampling holds the projections of all 294,912 order-4 children, 15 GB and more than
ten minutes for 2,000 particles of 48^2 (measured), while the order-2 passes before it already
leave the poses within a step or two of order 3 (median error 8 degrees on that set) for the
local search (2 steps around each pose per iteration) to walk from. ``--local-from-order 4``
restores RELION's rule.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import shell_index
from cryomath.imaging import NoiseSpectrum, estimate_noise_from_background, iter_batches
from cryomath.inference.accuracy import PoseAccuracy, pose_accuracy
from cryomath.inference.expectation import (
    ParticleState,
    PassSums,
    References,
    check_settings,
    expectation_pass,
    merged_noise,
    offset_sigma,
    particle_radius_px,
)
from cryomath.inference.greyscale import greyscale_factor
from cryomath.inference.leave_out import affordable_groups, group_rows, left_out_maps
from cryomath.inference.refine_rules import sampling_for, shell_of, update_sampling
from cryomath.inference.sampling import Sampling
from cryomath.reconstruction.direct import invert
from cryomath.reconstruction.halves import HalfMaps, fourier_average_fsc, half_subsets
from cryomath.resolution import (
    FSCCurve,
    automatic_mask,
    fourier_shell_correlation,
    low_pass,
    resolution_angstrom,
)
from cryomath.so3.symmetry import point_group


@dataclass
class RefineSettings:
    """The user's choices (RELION's option names in brackets)."""

    ini_high_angstrom: float = 30.0  # [--ini_high]
    particle_diameter_angstrom: float | None = None  # [--particle_diameter]; default: 90 % box
    symmetry: str = "C1"  # [--sym]
    healpix_order: int = 2  # [--healpix_order]
    local_from_order: int = 3  # [--auto_local_healpix_order]: RELION's 4 (module docstring)
    max_order: int = 5
    offset_range_px: float = 5.0  # [--offset_range]
    offset_step_px: float = 1.0  # [--offset_step]
    max_significant: int = 64  # [--maxsig]
    max_iterations: int = 25
    join_below_angstrom: float = 40.0  # [--low_resol_join_halves]
    batch_size: int = 256
    split_seed: int = 0
    absolute_greyscale: bool = False  # [--firstiter_cc off]: else scaled (inference.greyscale)
    tau2_fudge: float = 1.0  # [--tau2_fudge]: the signal power's multiplier in the prior
    scale_correction: bool = True  # [--scale]: an amplitude scale per optics group
    dose_e_per_a2: float | None = None  # Poisson scores of counting images; no --scale then
    ignore_angle_changes: bool = False  # [--auto_ignore_angles] (RELION 4): finer on resolution
    resolution_based_angles: bool = False  # [--auto_resol_angles] (RELION 4)
    leave_out_groups: int = 8  # local searches score against maps without the image's group
    global_recheck: bool = False  # once converged: one more global pass, then local again
    solvent_mask: torch.Tensor | None = None  # [--solvent_mask]: (n, n, n) in [0, 1]
    auto_mask: bool = True  # the references masked by the last map's automatic mask; off: RELION
    compiled_insertion: bool = False  # M-step insertion through compiled CPU kernels (--compile)

    def check(self) -> None:
        checks = [
            ("ini_high_angstrom", self.ini_high_angstrom > 0),
            ("healpix_order", 0 <= self.healpix_order <= self.max_order <= 8),
            ("local_from_order", self.local_from_order >= 0),
            ("offset_range_px", self.offset_range_px >= 0),
            ("offset_step_px", self.offset_step_px > 0),
            ("max_iterations", self.max_iterations >= 1),
            ("max_significant", self.max_significant >= 1),
            ("batch_size", self.batch_size >= 1),
            ("tau2_fudge", self.tau2_fudge > 0),
            ("leave_out_groups", self.leave_out_groups >= 1),
            ("dose_e_per_a2", self.dose_e_per_a2 is None or self.dose_e_per_a2 > 0),
        ]
        check_settings(self, checks)
        if self.global_recheck and self.local_from_order <= self.healpix_order:
            raise InvalidInputError(
                f"global_recheck needs a global first order: local_from_order "
                f"({self.local_from_order}) must be above healpix_order ({self.healpix_order})"
            )


@dataclass
class RefineState:
    """Everything an interrupted refinement needs to continue (the checkpoint)."""

    iteration: int
    maps: torch.Tensor  # (2, n, n, n): the half maps, references of the next iteration
    voxel_size_angstrom: float
    particles: ParticleState
    halves: np.ndarray
    sampling: Sampling
    noise: NoiseSpectrum
    offset_sigma_px: float
    band_shell: int = 0  # RELION's current_size / 2: the band of the data used
    fsc: torch.Tensor | None = None  # the last half-map FSC per shell
    full: torch.Tensor | None = None  # both halves' sums inverted together
    best_shell: int = 0
    smallest_change_degrees: float = math.inf  # the poses' smallest mean change at this order
    converged: bool = False
    group_scales: dict = field(default_factory=dict)  # optics group -> amplitude scale
    left_out: torch.Tensor | None = None  # (2, G, n, n, n): each half without each group
    recheck_iteration: int | None = None  # the iteration that ran the global recheck pass
    history: list[dict] = field(default_factory=list)


def start_refinement(
    table, reference: torch.Tensor, voxel_size_angstrom: float, settings: RefineSettings,
    dtype=torch.float32, device=None,
) -> RefineState:  # fmt: skip
    """The state before iteration 1: the reference low-passed to ``ini_high`` for both halves,
    the halves (``rlnRandomSubset``, else a seeded split), the noise from the images' background
    outside the particle, offsets from the table (zero when absent)."""
    settings.check()
    n = reference.shape[-1]
    if reference.shape != (n, n, n):
        raise InvalidInputError(f"the reference must be cubic, got {tuple(reference.shape)}")
    if table.image_size is not None and int(np.max(table.image_size)) != n:
        raise InvalidInputError(
            f"the reference's box ({n}) differs from the particles' ({int(table.image_size[0])})"
        )
    start = low_pass(reference.double(), settings.ini_high_angstrom, voxel_size_angstrom)
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel_size_angstrom)
    noise = estimate_noise_from_background(
        iter_batches(table, settings.batch_size, device, torch.float64, use_ctf=False), radius
    )
    shifts = np.zeros((table.n, 2))
    if table.origins_angstrom is not None:
        shifts = -table.origins_angstrom / np.asarray(table.pixel_size_angstrom)[:, None]
    particles = ParticleState.start(
        np.tile(np.eye(3), (table.n, 1, 1)), shifts, np.zeros(table.n, np.int64)
    )
    ini_shell = shell_of(settings.ini_high_angstrom, n, voxel_size_angstrom)
    band = min(n // 2 - 1, ini_shell + 10)
    sampling = sampling_for(settings, settings.healpix_order, settings.offset_range_px,
                         settings.offset_step_px, band, n, voxel_size_angstrom)  # fmt: skip
    if not settings.absolute_greyscale:
        start = start * greyscale_factor(table, start, voxel_size_angstrom, noise,
                                         max(ini_shell, 1), batch_size=settings.batch_size,
                                         device=device)  # fmt: skip
    return RefineState(
        0,
        torch.stack([start, start]).to(dtype),
        voxel_size_angstrom,
        particles,
        half_subsets(table, settings.split_seed),
        sampling,
        noise,
        max(settings.offset_range_px / 3, 0.5),
        band_shell=band,
    )


def refine_iteration(
    table, state: RefineState, settings: RefineSettings, dtype=torch.float32, device=None,
    progress=None, passes=expectation_pass,
) -> dict:  # fmt: skip
    """One iteration (E-step of both halves, M-step, sampling rules); updates ``state`` in place
    and returns the iteration's log line. ``passes`` runs each expectation pass
    (``expectation_pass``, or the pipelines' Dask version with its signature)."""
    n = state.maps.shape[-1]
    voxel = state.voxel_size_angstrom
    group = point_group(settings.symmetry, dtype=torch.float64, device=device)
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel)
    mask = reference_mask(state, settings, radius, device)
    groups = 1
    if state.sampling.local:  # no more groups than either half has particles
        groups = min(settings.leave_out_groups, *(int(np.sum(state.halves == h)) for h in (1, 2)))
        groups = affordable_groups(groups, n, dtype, device)
    previous = state.left_out  # made by G > 1 groups: of no use to another count
    if previous is not None and previous.shape[1] != groups:
        previous = None
    parts: dict[tuple[int, int], PassSums] = {}
    shifts_before = state.particles.shifts_px.copy()
    for h in (1, 2):
        for g, rows in enumerate(group_rows(state.halves, h, groups)):
            reference = state.maps[h - 1] if previous is None else previous[h - 1, g]
            refs = References(reference[None].to(device) * mask, voxel,
                              torch.zeros(1, dtype=dtype, device=device))  # fmt: skip
            parts[h, g] = PassSums({}, compiled=settings.compiled_insertion)
            passes(
                table, rows, state.halves, refs, state.particles, state.sampling, state.noise,
                parts[h, g], offset_sigma_px=state.offset_sigma_px, group=group,
                batch_size=settings.batch_size, dtype=dtype, device=device, progress=progress,
                group_scales=state.group_scales,
            )  # fmt: skip
    if {key for p in parts.values() for key in p.accumulators} != {(0, 1), (0, 2)}:
        raise InvalidInputError("both gold-standard halves need particles")
    left_out = None
    if groups > 1:
        left_out = left_out_maps(parts, lambda acc: _inverted(acc, state.fsc, settings.tau2_fudge))
    sums = PassSums({})
    for part in parts.values():
        sums.merge(part)
    if settings.scale_correction:
        state.group_scales = sums.group_scales()
    halves = half_maps(sums, state.fsc, tau2_fudge=settings.tau2_fudge)
    if left_out is not None:  # joined at low resolution with the other half, as the halves
        joined = (left_out + halves.flip(0)[:, None]) / 2
        left_out = with_low_shells(left_out, joined, voxel, settings.join_below_angstrom)
        left_out = left_out.to(state.maps.dtype).cpu()
    state.left_out = left_out
    halves = join_low_resolution(halves, voxel, settings.join_below_angstrom)
    curve = band_limited(fourier_average_fsc(sums.accumulators[(0, 1)], sums.accumulators[(0, 2)],
                                             voxel), state.band_shell)  # fmt: skip
    state.maps, state.fsc = halves.to(state.maps.dtype).cpu(), curve.fsc.cpu()
    joined = sums.accumulators[(0, 1)]
    joined.merge(sums.accumulators[(0, 2)])
    state.full = invert(joined, half_map_fsc=curve.fsc.to(joined.weights.device),
                        tau2_fudge=settings.tau2_fudge).cpu()  # fmt: skip
    state.noise = merged_noise(state.noise, sums.noise.result(), state.band_shell)
    state.offset_sigma_px = max(offset_sigma(sums), 0.5)
    state.iteration += 1
    offset_change_px = float(np.linalg.norm(state.particles.shifts_px - shifts_before,
                                            axis=1).mean())  # fmt: skip
    accuracy = halves_accuracy(table, state, device)
    line = _log_line(state, curve, voxel, n) | {
        "leave_out_groups": groups,
        "accuracy_rotation_degrees": accuracy.rotation_degrees,
        "accuracy_offset_angstrom": accuracy.offset_px * voxel,
        "mean_offset_change_angstrom": offset_change_px * voxel,
    }
    update_sampling(state, settings, curve, n, voxel, accuracy.rotation_degrees)
    state.history.append(line)
    return line


def reference_mask(state: RefineState, settings: RefineSettings, radius_px: float,
                   device=None) -> torch.Tensor:  # fmt: skip
    """The mask on the references ``(n, n, n)``: the user's solvent mask (RELION's
    ``--solvent_mask``); else with ``auto_mask`` the automatic mask (``resolution.masked``) of
    the last joined map, or of the start, within the particle's sphere (cryoSPARC's dynamic
    mask); else the particle's soft sphere."""
    n, dtype = state.maps.shape[-1], state.maps.dtype
    fixed = solvent_mask_or_sphere(settings, n, radius_px, dtype, device)
    if settings.solvent_mask is not None or not settings.auto_mask:
        return fixed
    last = state.full if state.full is not None else state.maps.mean(0)
    return automatic_mask(last.to(device), state.voxel_size_angstrom).to(dtype) * fixed


def solvent_mask_or_sphere(settings: RefineSettings, n: int, radius_px: float, dtype,
                           device=None) -> torch.Tensor:  # fmt: skip
    """``(n, n, n)``: the user's solvent mask (``settings.solvent_mask``), else the particle's
    soft sphere of ``radius_px`` (RELION's masks on the references)."""
    if settings.solvent_mask is not None:
        return settings.solvent_mask.to(device=device, dtype=dtype)
    return spherical_mask((n, n, n), radius_px, 3.0, dtype=dtype, device=device)


def band_limited(curve: FSCCurve, max_shell: int) -> FSCCurve:
    """The curve with the shells beyond ``max_shell`` (not reconstructed: both maps are zero
    there) at 0."""
    fsc = curve.fsc.clone()
    fsc[..., max_shell + 1 :] = 0
    return FSCCurve(fsc, curve.spatial_frequency_per_angstrom, curve.counts)


def half_maps(sums: PassSums, fsc: torch.Tensor | None, k: int = 0,
              tau2_fudge: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Class ``k``'s two half maps ``(2, n, n, n)``, each regularised per shell by the last FSC
    (a unit prior weight at first: RELION's tau2 from the FSC, times ``tau2_fudge``)."""
    return torch.stack([_inverted(sums.accumulators[(k, h)], fsc, tau2_fudge) for h in (1, 2)])


def _inverted(acc, fsc: torch.Tensor | None, tau2_fudge: float) -> torch.Tensor:
    if fsc is None:
        return invert(acc, prior_weight=1.0)
    return invert(acc, half_map_fsc=fsc.to(acc.weights.device), tau2_fudge=tau2_fudge)


def join_low_resolution(halves: torch.Tensor, voxel: float, below_angstrom: float):
    """``halves (2, n, n, n)`` with their Fourier components below ``below_angstrom`` (shells
    up to ``n voxel / below``) replaced by the halves' mean (RELION's
    ``--low_resol_join_halves``: both halves see the same low-resolution map)."""
    return with_low_shells(halves, halves.mean(0), voxel, below_angstrom)


def with_low_shells(maps: torch.Tensor, source: torch.Tensor, voxel: float,
                    below_angstrom: float) -> torch.Tensor:  # fmt: skip
    """``maps (..., n, n, n)`` with their Fourier components below ``below_angstrom`` those of
    ``source`` (broadcast to ``maps``)."""
    n = maps.shape[-1]
    f = fft_nd(maps, 3, rfft=True)
    low = shell_index((n, n, n), device=maps.device) <= shell_of(below_angstrom, n, voxel)
    f[..., low] = fft_nd(source, 3, rfft=True)[..., low]
    return ifft_nd(f, (n, n, n), rfft=True)


def _log_line(state: RefineState, curve: FSCCurve, voxel: float, n: int) -> dict:
    p = state.particles
    return {
        "iteration": state.iteration,
        "healpix_order": state.sampling.healpix_order,
        "local": state.sampling.local,
        "step_degrees": state.sampling.step_degrees,
        "offset_step_px": state.sampling.offset_step_px,
        "max_shell": state.sampling.max_shell,
        "band_shell": state.band_shell,
        "resolution_0143_angstrom": resolution_angstrom(curve, 0.143),
        "resolution_05_angstrom": resolution_angstrom(curve, 0.5),
        "median_change_degrees": float(np.median(p.change_degrees)),
        "mean_change_degrees": float(np.mean(p.change_degrees)),
        "mean_max_probability": float(p.max_probability.mean()),
        "mean_significant": float(p.significant.mean()),
        "offset_sigma_px": state.offset_sigma_px,
        "group_scales": {str(g): s for g, s in state.group_scales.items()},
        "fsc": curve.fsc.cpu().tolist(),
    }


def halves_accuracy(table, state: RefineState, device=None, per_half: int = 50) -> PoseAccuracy:
    """RELION's estimated pose accuracy (``inference.accuracy``) of the first ``per_half``
    particles of each half against their half's new map at their new poses, in the band just
    searched (RELION: 100 particles)."""
    found = []
    for h in (1, 2):
        rows = np.flatnonzero(state.halves == h)[:per_half]
        found.append(pose_accuracy(table, rows, state.maps[h - 1].double(),
                                   state.particles.rotations, state.voxel_size_angstrom,
                                   state.noise, state.band_shell, seed=state.iteration,
                                   group_scales=state.group_scales, device=device))  # fmt: skip
    return PoseAccuracy(*np.mean([(a.rotation_degrees, a.offset_px) for a in found], 0))


def final_maps(state: RefineState) -> HalfMaps:
    """The refinement's maps: the two halves and the full map, their FSC and voxel size."""
    voxel = state.voxel_size_angstrom
    if state.full is None:
        raise InvalidInputError("the refinement has not run an iteration yet")
    half1, half2 = state.maps[0].double(), state.maps[1].double()
    curve = fourier_shell_correlation(half1, half2, voxel)
    return HalfMaps(half1, half2, state.full.double(), curve, voxel)
