"""One expectation pass over particles: score every hypothesis of every image against K
references, marginalise, and add the M-step's sums (``ml_optimiser.cpp``'s
``expectationOneParticle`` and ``storeWeightedSums``, as dense linear algebra).

Per batch: the images are centred on their previous offsets (the offset hypotheses are a
lattice around them); a global search scores them against the projections of every reference
at the shared orientations (made once per pass), a local one against each image's own
orientations around its previous pose (``sampling``); the posterior (priors: class fractions,
a Gaussian on the offset about the box centre, and for local searches on the angle) gives each
particle its best hypothesis, RELION's summaries, and the weights of the sums, per class and per
gold-standard half. The noise spectrum is re-estimated from the residuals at the best pose,
and each optics group's amplitude scale (RELION's ``--scale``, ``rlnGroupScaleCorrection``,
per optics group here) from the same predictions: the least-squares ``s`` of ``X = s C P``
weighted by ``1 / sigma^2``. A group's scale ``s`` is applied by dividing its images by ``s``
and its noise power by ``s^2``: the scores and the M-step's sums then equal RELION's with
``s C P`` as the prediction.
"""

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import (
    FourierAccumulator,
    NoiseSpectrum,
    NoiseSpectrumEstimator,
    ParticleBatch,
    iter_batches,
)
from cryomath.inference.band import OwnRows
from cryomath.inference.global_search import GlobalSearch, with_group, with_image_prior
from cryomath.inference.posterior import offset_log_prior, posterior
from cryomath.inference.sampling import (
    Sampling,
    local_orientations,
    local_steps,
    offset_grid,
)
from cryomath.inference.scores import band_samples_and_noise, pose_scores
from cryomath.inference.sums import PoseSums
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.so3.metrics import geodesic_distance


@dataclass
class ParticleState:
    """What each of ``n`` particles carries between iterations (numpy, float64): pose A
    ``rotations (n, 3, 3)``, ``shifts_px (n, 2)`` (content shifts, ``-origin / pixel``),
    ``classes (n,)`` (0-based), RELION's ``max_probability``, ``log_likelihood`` and
    ``significant`` (``rlnMaxValueProbDistribution``, ``rlnLogLikeliContribution``,
    ``rlnNrOfSignificantSamples``) and the last ``change_degrees`` of the pose."""

    rotations: np.ndarray
    shifts_px: np.ndarray
    classes: np.ndarray
    max_probability: np.ndarray
    log_likelihood: np.ndarray
    significant: np.ndarray
    change_degrees: np.ndarray

    def take(self, rows: np.ndarray) -> "ParticleState":
        """The particles ``rows`` (a copy)."""
        return ParticleState(*(getattr(self, f.name)[rows].copy() for f in fields(self)))

    def put(self, rows: np.ndarray, part: "ParticleState") -> None:
        """Write ``part`` (from :meth:`take`) back to the particles ``rows``."""
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(part, f.name)

    @classmethod
    def start(cls, rotations: np.ndarray, shifts_px: np.ndarray, classes: np.ndarray):
        n = len(classes)
        return cls(rotations.astype(np.float64), shifts_px.astype(np.float64),
                   classes.astype(np.int64), np.zeros(n), np.zeros(n), np.zeros(n, np.int64),
                   np.full(n, 180.0))  # fmt: skip


@dataclass
class PassSums:
    """What a pass adds up: one accumulator per (class, half), the noise estimator, the
    posterior mass of each class, and the offsets' squared distances from the box centre."""

    accumulators: dict  # (class, half) -> FourierAccumulator; 2-D: half -> planar sums
    noise: NoiseSpectrumEstimator = field(default_factory=NoiseSpectrumEstimator)
    class_mass: np.ndarray | None = None
    offset_square_sum: float = 0.0
    count: int = 0
    scale_sums: dict = field(default_factory=dict)  # group -> [X.CP / s2, |CP|^2 / s2, images]
    compiled: bool = False  # new accumulators insert through the compiled CPU kernels

    def accumulator(self, key, n: int, voxel_size_angstrom: float, dtype, device):
        """The accumulator of ``key`` ``(class, half)``, made (padding 2) on first use."""
        if key not in self.accumulators:
            self.accumulators[key] = FourierAccumulator(n, 2.0, dtype, device,
                                                        voxel_size_angstrom,
                                                        compiled=self.compiled)  # fmt: skip
        return self.accumulators[key]

    def merge(self, other: "PassSums") -> None:
        """Add the sums of another pass over other particles (a worker's chunk)."""
        for key, acc in other.accumulators.items():
            if key not in self.accumulators:
                self.accumulators[key] = acc
            elif isinstance(acc, torch.Tensor):  # 2-D classification's planar sums
                self.accumulators[key] = self.accumulators[key] + acc.to(self.accumulators[key])
            else:
                self.accumulators[key].merge(acc)
        self.noise.merge(other.noise)
        if other.class_mass is not None:
            mass = self.class_mass if self.class_mass is not None else 0
            self.class_mass = mass + other.class_mass
        self.offset_square_sum += other.offset_square_sum
        self.count += other.count
        for group, terms in other.scale_sums.items():
            mine = self.scale_sums.setdefault(group, [0.0, 0.0, 0])
            self.scale_sums[group] = [a + b for a, b in zip(mine, terms, strict=True)]

    def group_scales(self) -> dict[int, float]:
        """Each optics group's amplitude scale, normalised to a particle-weighted mean of 1
        (the map holds the common scale)."""
        raw = {g: c / p for g, (c, p, _) in self.scale_sums.items() if p > 0}
        if not raw:
            return {}
        counts = {g: self.scale_sums[g][2] for g in raw}
        mean = sum(raw[g] * counts[g] for g in raw) / sum(counts.values())
        if not mean > 0:
            raise InvalidInputError("the images do not correlate with the references")
        return {g: s / mean for g, s in raw.items()}


@dataclass
class References:
    """``maps (K, n, n, n)`` on one voxel size, with a soft spherical mask already applied."""

    maps: torch.Tensor
    voxel_size_angstrom: float
    log_class_prior: torch.Tensor  # (K,)

    def spectra(self):
        return prepare_volume(self.maps, 2.0, voxel_size_angstrom=self.voxel_size_angstrom)


def expectation_pass(
    table,
    rows: np.ndarray,
    halves: np.ndarray,
    references: References | None,
    state: ParticleState,
    sampling: Sampling,
    noise: NoiseSpectrum,
    sums: PassSums,
    *,
    offset_sigma_px: float,
    group: torch.Tensor,
    batch_size: int = 256,
    dtype=torch.float32,
    device=None,
    progress=None,
    search=None,
    image_class_prior: np.ndarray | None = None,
    group_scales: dict[int, float] | None = None,
    max_table_bytes: float | None = None,
) -> None:
    """Score the particles ``rows`` of ``table``; update their entries of ``state`` in place and
    add to ``sums`` (accumulators keyed by (class, ``halves[row]``)). ``group (G, 3, 3)``: the
    point group (a global search covers its asymmetric unit; insertion uses every ``A g``).
    ``search``: another shared set of hypotheses than the 3-D references' (2-D classification's
    in-plane rotations of class averages), with ``global_search.GlobalSearch``'s methods.
    ``image_class_prior (table.n, K)``: a log prior on each particle's class on top of the
    class fractions (``-inf``: not that class; RELION's random classes of a first iteration).
    ``group_scales``: each optics group's amplitude scale (default 1; module docstring).
    ``max_table_bytes``: the memory each of a global search's tables over every orientation (the
    fine projections' band; the M-step sums of both halves) may take, by default half of what
    ``device`` has free; beyond it each batch projects only the children its images keep, and
    its sums hold only the rows its images touch and are inserted at once (the same result; more
    work where batches share rows)."""
    sampling.check()
    if search is None and not sampling.local:
        search = GlobalSearch(references, sampling, group, dtype, device, max_table_bytes)
    if sampling.local:
        spectrum = references.spectra()
        k_classes, log_class_prior = references.maps.shape[0], references.log_class_prior
    else:
        k_classes, log_class_prior = search.n_classes, search.log_class_prior
    shifts = offset_grid(sampling.offset_range_px, sampling.offset_step_px, dtype, device)
    _check_batch_memory(table, batch_size, len(shifts), k_classes, sampling, search, dtype,
                        device)  # fmt: skip
    pose_sums: dict[int, PoseSums] = {}
    per_batch = isinstance(search, GlobalSearch) and search.sums_per_batch
    if sums.class_mass is None:
        sums.class_mass = np.zeros(k_classes)
    for batch in iter_batches(table, batch_size, device, dtype, rows=rows):
        index = batch.indices.cpu().numpy()
        prev = torch.as_tensor(state.shifts_px[index], dtype=dtype, device=batch.device)
        n = batch.image_size
        scale = (group_scales or {}).get(batch.optics_group, 1.0)
        centred = replace(batch, spectra=batch.spectra * phase_ramp((n, n), -prev, rfft=True)
                          / scale)  # fmt: skip
        batch_noise = _scaled(noise, batch.optics_group, scale)
        prior_shift = offset_log_prior(shifts, -prev, offset_sigma_px)  # about the box centre
        centres = torch.as_tensor(state.rotations[index], device=batch.device)
        image_prior = None
        if image_class_prior is not None:
            image_prior = torch.as_tensor(image_class_prior[index], dtype=dtype, device=device)
        if sampling.local:
            poses, log_angle = local_orientations(centres, sampling.step_degrees,
                                                  sampling.local_radius_steps)  # fmt: skip
            at = poses.flatten(0, 1)[None].expand(k_classes, -1, 3, 3).to(spectrum.data.dtype)
            hyp = extract_central_slices_rfft_3d(spectrum, at, max_shell=sampling.max_shell)
            hyp = hyp.unflatten(1, poses.shape[:2]).transpose(0, 1).flatten(1, 2)
            hyp = hyp.to(complex_dtype(dtype))
            log_prior = with_image_prior((log_class_prior[:, None] + log_angle).flatten(),
                                         image_prior, len(log_angle))  # fmt: skip
            rows_of = None
        else:
            hyp, rows_of, log_prior = search.hypotheses(centred, shifts, prior_shift,
                                                        batch_noise, image_prior)  # fmt: skip
        scores = pose_scores(centred, hyp, shifts, batch_noise, sampling.max_shell,
                             sampling.dose_e_per_a2)  # fmt: skip
        post = posterior(scores, prior_shift, log_prior.to(scores.dtype), sampling.mass)
        best = post.weights.flatten(1).argmax(1)
        n_hyp = scores.shape[-1]
        best_s, best_h = best // n_hyp, best % n_hyp
        b_range = torch.arange(len(batch), device=batch.device)
        if sampling.local:
            n_poses = poses.shape[1]
            best_class, chosen = best_h // n_poses, poses[b_range, best_h % n_poses]
        else:
            n_poses = len(search.poses)
            row = best_h if rows_of is None else rows_of[b_range, best_h]
            best_class, chosen = row // n_poses, search.poses[row % n_poses]
        new_shift = prev + shifts[best_s]
        change = torch.rad2deg(geodesic_distance(centres.double(), chosen.double()))
        _record(state, index, chosen, new_shift, best_class, post, change)
        hyp_class = torch.arange(n_hyp, device=batch.device) // n_poses
        if rows_of is not None:
            hyp_class = rows_of // n_poses
        sums.class_mass += _class_mass(post.weights, hyp_class, k_classes)
        # the best offsets' squares; RELION sums the posterior's expected squares, which keep
        # the true sd (3.29 A on dataset (a) of bench/refine.py, truth 3.27 A) where these
        # shrink it while the data are weak (1.5 A on (b)), but then stayed 12 iterations at
        # order 2 on (a), the map falling from 3.78 to 4.07 A, as RELION's own run there did
        sums.offset_square_sum += float((new_shift.double() ** 2).sum())
        sums.count += len(batch)
        half = torch.as_tensor(halves[index], device=batch.device)
        kept = post.significant_weights()  # RELION's M-step: the significant weights only
        for h in (1, 2):
            pick = (half == h).nonzero()[:, 0]
            if len(pick) == 0:
                continue
            part, w = centred.subset(pick), kept[pick]
            if sampling.local:  # each image's own poses: sums inserted batch by batch
                own = torch.arange(len(pick) * n_poses, device=batch.device).view(len(pick), -1)
                for k in range(k_classes):
                    local_sums = PoseSums(own.numel(), n, sampling.max_shell, dtype, device)
                    local_sums.add(part, w[..., k * n_poses : (k + 1) * n_poses], shifts, own)
                    acc = sums.accumulator(
                        (k, h), references.maps.shape[-1], references.voxel_size_angstrom, dtype,
                        device)  # fmt: skip
                    local_sums.insert(acc, with_group(poses[pick].flatten(0, 1), group))
                continue
            if per_batch:  # the rows these images touch, as a small table of their own
                if rows_of is None:
                    touched = (w.sum((0, 1)) > 0).nonzero()[:, 0]
                    w, own = w[..., touched], None
                else:
                    touched, own = torch.unique(rows_of[pick], return_inverse=True)
                batch_sums = PoseSums(len(touched), n, sampling.max_shell, dtype, device)
                batch_sums.add(part, w, shifts, own)
                search.insert(batch_sums, h, sums, touched)
                continue
            if h not in pose_sums:
                pose_sums[h] = PoseSums(k_classes * n_poses, n, sampling.max_shell, dtype, device)
            pose_sums[h].add(part, w, shifts, None if rows_of is None else rows_of[pick])
        predicted = _prediction(centred, hyp, best_h, shifts[best_s])
        sums.noise.add(centred, (centred.spectra - predicted) * scale)  # X - s C P
        if sampling.dose_e_per_a2 is None:  # counts are not rescaled: no group scales
            _add_scale_terms(sums, centred, predicted, scale, batch_noise, sampling.max_shell)
        if progress is not None:
            progress(len(batch))
    for h, pose_sum in pose_sums.items():
        search.insert(pose_sum, h, sums)


def _check_batch_memory(table, batch_size, n_shifts, k_classes, sampling, search, dtype,
                        device) -> None:  # fmt: skip
    """Refuse a pass whose batch would not fit: the scores and weights of every (image,
    shift, hypothesis) and each image's own projections (local or oversampled searches)."""
    n = int(np.max(table.image_size)) if table.image_size is not None else 0
    b = min(batch_size, table.n)
    if sampling.local:
        hypotheses = own = len(local_steps(sampling.local_radius_steps)) * k_classes
    else:
        hypotheses, own = search.hypotheses_per_image, search.own_projections_per_image
    item = torch.empty((), dtype=dtype).element_size()
    needed = item * b * (4 * n_shifts * hypotheses + 2 * own * n * (n // 2 + 1))
    check_memory(needed, f"a batch of {b} images x {n_shifts} offsets x {hypotheses} poses "
                 "(lower --batch-size, --maxsig or the offset search)", device)  # fmt: skip


def _class_mass(weights: torch.Tensor, classes: torch.Tensor, k_classes: int) -> np.ndarray:
    """The posterior mass of each class summed over the batch (``classes``: each hypothesis'
    class, ``(H,)`` or ``(B, H)``)."""
    per_hyp = weights.sum(1)  # (B, H)
    mass = torch.zeros(k_classes, dtype=torch.float64, device=weights.device)
    mass.index_add_(0, classes.expand_as(per_hyp).reshape(-1), per_hyp.reshape(-1).double())
    return mass.cpu().numpy()


def _prediction(batch: ParticleBatch, hyp, best_r, shift):
    """The predicted spectra ``C P ramp(t)`` at each image's best hypothesis (``hyp``: what
    the search's ``hypotheses`` gave, complex projections or ``OwnRows``)."""
    n = batch.image_size
    if isinstance(hyp, OwnRows):  # an oversampled global search's children: band rows
        p = hyp[torch.arange(len(batch)), best_r].spectra()
    else:  # shared (R, ...) or each image's own (B, R, ...)
        p = hyp[torch.arange(len(batch)), best_r] if hyp.ndim == 4 else hyp[best_r]
    ctf = batch.ctf_values()
    p = p if ctf is None else p * ctf
    return p * phase_ramp((n, n), shift, rfft=True)


def _scaled(noise: NoiseSpectrum, group: int, scale: float) -> NoiseSpectrum:
    """``noise`` with ``group`` 's power divided by ``scale^2`` (its images divided by it)."""
    if scale == 1.0 or group not in noise.groups:
        return noise
    sigma2 = noise.sigma2.clone()
    sigma2[noise.groups.index(group)] /= scale**2
    return NoiseSpectrum(noise.groups, sigma2)


def _add_scale_terms(sums: PassSums, batch: ParticleBatch, predicted, scale: float, noise,
                     max_shell: int) -> None:  # fmt: skip
    """Add the batch's ``sum X.CP / sigma^2`` and ``sum |CP|^2 / sigma^2`` (the images ``X``
    unscaled; the samples the scores count, each rfft sample with its Friedel mate)."""
    keep, m, sigma2 = band_samples_and_noise(batch, noise, max_shell)
    w = m / sigma2 / scale**2  # 1 / the unscaled images' noise power
    x = batch.spectra.flatten(1)[:, keep] * scale
    p = predicted.flatten(1)[:, keep]
    per_image = batch.weights.to(w.dtype)
    cross = ((x * p.conj()).real * w).sum(-1) @ per_image
    power = ((p.abs() ** 2) * w).sum(-1) @ per_image
    terms = sums.scale_sums.setdefault(batch.optics_group, [0.0, 0.0, 0])
    terms[0] += float(cross)
    terms[1] += float(power)
    terms[2] += len(batch)


def _record(state: ParticleState, index, chosen, new_shift, best_class, post, change):
    state.rotations[index] = chosen.double().cpu().numpy()
    state.shifts_px[index] = new_shift.double().cpu().numpy()
    state.classes[index] = best_class.cpu().numpy()
    state.max_probability[index] = post.max_probability.double().cpu().numpy()
    state.log_likelihood[index] = post.log_evidence.double().cpu().numpy()
    state.significant[index] = post.significant.cpu().numpy()
    state.change_degrees[index] = change.cpu().numpy()


def check_settings(settings, checks: list[tuple[str, bool]]) -> None:
    """Refuse ``settings`` (a dataclass with ``particle_diameter_angstrom``) at the first
    ``(field name, ok)`` of ``checks`` that is not ok, or a diameter that is not positive."""
    for name, ok in checks:
        if not ok:
            raise InvalidInputError(f"{name} is out of range: {getattr(settings, name)}")
    diameter = settings.particle_diameter_angstrom
    if diameter is not None and not diameter > 0:
        raise InvalidInputError("the particle diameter must be positive")


def particle_radius_px(diameter_angstrom: float | None, n: int, pixel: float) -> float:
    """The particle's radius in pixels of ``pixel`` A in an ``n``-pixel box (RELION's
    ``--particle_diameter`` / 2; default 90 % of the half box, at most the half box)."""
    if diameter_angstrom is None:
        return 0.45 * n
    return min(diameter_angstrom / (2 * pixel), n / 2)


def offset_sigma(sums: PassSums) -> float:
    """RELION's offset sd update, ``sqrt(sum |t|^2 / (2 N))`` (per axis, pixels), over each
    image's best offset ``t`` (``expectation_pass`` says why not RELION's expectation)."""
    if sums.count == 0:
        raise InvalidInputError("no particles were scored")
    return math.sqrt(sums.offset_square_sum / (2 * sums.count))


def merged_noise(old: NoiseSpectrum, new: NoiseSpectrum, max_shell: int) -> NoiseSpectrum:
    """The new estimate within the band searched, the old one beyond (RELION keeps sigma2
    beyond ``current_size``) and at the origin, which no score counts (nor RELION's) and
    where a prediction from ``BandProjections`` is zero."""
    sigma2 = old.sigma2.clone()
    k = min(max_shell + 1, new.sigma2.shape[1], sigma2.shape[1])
    for i, g in enumerate(new.groups):
        if g in old.groups:
            sigma2[old.groups.index(g), 1:k] = new.sigma2[i, 1:k].to(sigma2)
    return NoiseSpectrum(old.groups, sigma2)
