"""A global search's hypotheses (``expectation_pass``'s shared orientations): the projections
of every reference at a HEALPix grid, made once per pass, and with oversampling each image's
children of its significant coarse orientations (RELION's adaptive oversampling: the coarse
pass's ``maxsig`` best, each split into its 8 children at the next order, scored at the full
band; ``sampling``). Also the helpers both kinds of search share: symmetry copies of poses
for insertion and each image's class prior on its hypotheses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cryomath.devices import available_memory_bytes, check_memory
from cryomath.fourier.fft import complex_dtype
from cryomath.inference.band import (
    BandProjections,
    OwnRows,
    scored_frequencies,
    scored_samples,
)
from cryomath.inference.posterior import posterior
from cryomath.inference.sampling import Sampling, global_orientations, oversampled_orientations
from cryomath.inference.scores import pose_scores
from cryomath.inference.sums import PoseSums, band_samples
from cryomath.projection import extract_central_slices_rfft_3d, extract_samples_rfft_3d

if TYPE_CHECKING:  # annotations only: expectation imports this module
    from cryomath.inference.expectation import PassSums, References


class GlobalSearch:
    """A global search's projections (made once per pass) and, with oversampling, each image's
    children of its significant coarse orientations (``sampling``)."""

    def __init__(self, references: References, sampling: Sampling, group, dtype, device,
                 max_table_bytes: float | None = None):  # fmt: skip
        """``max_table_bytes``: what the fine band table and the M-step sums may each take
        (default half the free memory); beyond it each batch projects only the children its
        images keep (``per_batch``) or sums only the rows its images touch (``sums_per_batch``)."""
        self.sampling, self.references, self.group = sampling, references, group
        self.n_classes = references.maps.shape[0]
        self.log_class_prior = references.log_class_prior
        self.dtype, self.device = dtype, device
        order = sampling.healpix_order
        coarse = global_orientations(order, group, torch.float64, device)
        n = references.maps.shape[-1]
        item = torch.empty((), dtype=dtype).element_size()
        # complex projections of the coarse orientations; of the fine, the band's 3 reals
        # ([Re, Im] and |P|^2) per sample with Gaussian scores
        fine = 8 * len(coarse) * sampling.oversample
        band = len(scored_samples(n, sampling.max_shell)[0])
        per_fine = 3 * band if sampling.dose_e_per_a2 is None else 2 * n * (n // 2 + 1)
        limit = available_memory_bytes(device) / 2 if max_table_bytes is None else max_table_bytes
        # a fine table too large (Gaussian scores): each batch's own children, projected then
        fine_bytes = item * self.n_classes * fine * per_fine
        self.per_batch = fine > 0 and sampling.dose_e_per_a2 is None and fine_bytes > limit
        # likewise the M-step sums of every row, both halves (PoseSums: 3 reals per sample)
        rows = self.n_classes * (fine or len(coarse))
        self.sums_per_batch = 2 * 3 * item * rows * len(band_samples(n, sampling.max_shell)) > limit
        fine *= not self.per_batch
        needed = item * self.n_classes * (len(coarse) * 2 * n * (n // 2 + 1) + fine * per_fine)
        check_memory(needed, f"projections of {self.n_classes} maps at {len(coarse) + fine} "
                     "orientations (a lower --healpix-order)", device)  # fmt: skip
        self.spectrum = spectrum = references.spectra()
        self.coarse_band = sampling.max_shell
        if sampling.oversample and sampling.coarse_shell is not None:
            self.coarse_band = min(sampling.max_shell, sampling.coarse_shell)
        # the coarse (K R) projections: an adaptive pass with Gaussian scores scores them here
        # alone, at its band (as the children's K 8 R); otherwise they are the hypotheses
        if sampling.oversample and sampling.dose_e_per_a2 is None:
            self.coarse = band_projections(spectrum, coarse, dtype, self.coarse_band)
        else:
            self.coarse = project_references(spectrum, coarse, dtype, self.coarse_band)
        self.n_coarse = len(coarse)  # per class
        self.poses, self.fine = coarse, None
        self.hypotheses_per_image = self.n_classes * self.n_coarse
        self.own_projections_per_image = 0
        if sampling.oversample:
            self.poses = oversampled_orientations(order, group, torch.float64, device)
            if sampling.dose_e_per_a2 is not None:
                self.fine = project_references(spectrum, self.poses, dtype, sampling.max_shell)
            elif not self.per_batch:  # Gaussian scores: only the band's parts (or per batch)
                self.fine = band_projections(spectrum, self.poses, dtype, sampling.max_shell)
            self.own_projections_per_image = 8 * sampling.max_significant
            self.hypotheses_per_image = max(self.hypotheses_per_image,
                                            self.own_projections_per_image)  # fmt: skip

    def insert(self, pose_sum: PoseSums, half: int, sums: PassSums, rows=None) -> None:
        """Insert one half's sums of every class into its accumulator (at every ``A g``):
        sums with a row per (class, orientation), or with the rows ``rows`` of that table."""
        refs, r = self.references, len(self.poses)
        # the symmetry copies of the poses inserted: every pose's, or only the rows' (per batch)
        every = with_group(self.poses, self.group) if rows is None else None
        for k in range(self.n_classes):
            acc = sums.accumulator((k, half), refs.maps.shape[-1], refs.voxel_size_angstrom,
                                   self.dtype, self.device)  # fmt: skip
            if rows is None:
                pose_sum.insert(acc, every, slice(k * r, (k + 1) * r))
                continue
            mine = (rows // r == k).nonzero()[:, 0]
            if len(mine):
                pose_sum.insert(acc, with_group(self.poses[rows[mine] % r], self.group), mine)

    def hypotheses(self, batch, shifts, prior_shift, noise, image_prior=None):
        """``(projections, rows, log prior)`` for the batch: the shared projections (rows None)
        or each image's children with their rows ``(B, J)`` in ``self.poses``' table (Gaussian
        scores: ``OwnRows`` of the band table; Poisson: complex ``(B, J, ...)``);
        ``image_prior (B, K)``: each image's extra log prior on the classes."""
        log_class_prior, n_coarse = self.log_class_prior, self.n_coarse
        coarse_prior = with_image_prior(log_class_prior.repeat_interleave(n_coarse), image_prior,
                                        n_coarse)  # fmt: skip
        if self.fine is None and not self.per_batch:
            return self.coarse, None, coarse_prior
        s = self.sampling
        scores = pose_scores(batch, self.coarse, shifts, noise, self.coarse_band,
                             s.dose_e_per_a2)  # fmt: skip
        coarse = posterior(scores, prior_shift, coarse_prior.to(scores.dtype), s.mass, False)
        marginal = coarse.weights.sum(1)  # (B, K R): each orientation's mass over the shifts
        top = marginal.topk(min(s.max_significant, marginal.shape[1]), 1).indices  # (B, k)
        rows = (top[..., None] * 8 + torch.arange(8, device=top.device)).flatten(1)
        prior = log_class_prior[rows // (8 * n_coarse)]
        if image_prior is not None:
            prior = prior + torch.gather(image_prior, 1, rows // (8 * n_coarse))
        if self.per_batch:  # the poses these images keep, projected now, indexed as the table
            r = len(self.poses)
            poses, inverse = torch.unique(rows % r, return_inverse=True)
            table = band_projections(self.spectrum, self.poses[poses], self.dtype, s.max_shell)
            return OwnRows(table, rows // r * len(poses) + inverse), rows, prior
        if isinstance(self.fine, BandProjections):
            return OwnRows(self.fine, rows), rows, prior
        return self.fine[rows], rows, prior


def with_image_prior(prior: torch.Tensor, image_prior: torch.Tensor | None, per_class: int):
    """``prior (K H,)`` plus each image's class prior ``(B, K)`` on its ``per_class``
    hypotheses: ``(B, K H)`` (``prior`` itself without one)."""
    if image_prior is None:
        return prior
    return prior + image_prior.repeat_interleave(per_class, 1)


def project_references(spectrum, poses, dtype, max_shell: int):
    """``(K R, n, n // 2 + 1)`` projections of the K references at ``poses (R, 3, 3)``, zero
    beyond ``max_shell`` (the band scored)."""
    slices = extract_central_slices_rfft_3d(spectrum, poses[None].to(spectrum.data.dtype),
                                            max_shell=max_shell)  # fmt: skip
    return slices.flatten(0, 1).to(complex_dtype(dtype))


def band_projections(spectrum, poses, dtype, max_shell: int,
                     chunk: int = 4096) -> BandProjections:  # fmt: skip
    """:func:`project_references`' band (``BandProjections`` of ``K R`` rows), sampled there
    alone (``projection.extract_samples_rfft_3d``) ``chunk`` poses at a time: no complex rfft
    grids, and the parts and powers filled as they come (HEALPix order 3 oversampled, 294,912
    poses of a 64 box in float32: 5.0 GB as complex grids; its band of 12 shells: 0.9 GB)."""
    n = spectrum.n
    frequencies = scored_frequencies(n, max_shell, spectrum.data.device, torch.float64)
    parts = power = None
    for start in range(0, len(poses), chunk):
        count = min(chunk, len(poses) - start)
        samples = extract_samples_rfft_3d(spectrum, poses[None, start : start + count].to(
            spectrum.data.dtype), frequencies)  # fmt: skip
        part = BandProjections.of_samples(samples.to(complex_dtype(dtype)), n, max_shell)
        k = part.power.shape[0]
        if parts is None:
            parts = part.parts.new_empty((k, len(poses), part.parts.shape[-1]))
            power = part.power.new_empty((k, len(poses), part.power.shape[-1]))
        parts[:, start : start + count] = part.parts
        power[:, start : start + count] = part.power
    return BandProjections(parts.flatten(0, 1), power.flatten(0, 1), n, max_shell)


def with_group(poses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``poses (R, 3, 3)``, or with a point group of more than one operator every ``A g``:
    ``(R, G, 3, 3)`` (what ``PoseSums.insert`` inserts each row at)."""
    return poses[:, None] @ group.to(poses) if len(group) > 1 else poses
