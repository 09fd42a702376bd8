"""Hierarchical pose search (HPS; cryoDRGN2, Zhong et al. ICCV 2021): each image's best pose and
offset on a fine grid, scoring only the children of each level's best hypotheses.

A hypothesis is a HEALPix NEST direction of order ``o``, an in-plane angle ``psi`` and an offset
``t`` (content shift, pixels). Its 32 children split its cell: the 4 NEST sub-pixels of order
``o + 1``, ``psi -+ d_psi / 4`` (``d_psi = 360 / (6 2^o)``: the children's angles are centred
on the parent's, so its cell is covered on both sides) and ``t -+ d_t / 4`` on each axis
(``d_t``: the level's offset step). Every leaf of the last level therefore has exactly one
ancestor per level, and the leaves form a grid: :func:`leaf_grid`, which the exhaustive
search (:func:`exhaustive_pose_search`, the oracle of small cases) scores whole.

The base level is RELION's grid of ``base_order`` (``so3.grids.healpix_poses``: 4,608 poses
at order 2, cryoDRGN2's base) times the offsets of ``offset_grid`` (a lattice in a disk), all
scored as the E-step's two matrix products against shared projections; each level then keeps
each image's ``keep`` best hypotheses and scores their children, each
(image, parent) pair as one row of a batched product against its own 8 child projections,
centred on the parent's offset, with the 4 child offsets shared. The band scored rises
linearly from ``base_shell`` to ``final_shell`` over the levels (cryoDRGN2's L 12 -> 32):
coarse poses are told apart at low resolution, where a pose off the grid still correlates.
Scores are the Gaussian log-likelihood (``scores.gaussian_pose_scores``) without priors:
the maximum-likelihood pose, as cryoDRGN2 takes it.
"""

import math
from dataclasses import dataclass, replace

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, ParticleBatch
from cryomath.inference.global_search import project_references
from cryomath.inference.sampling import offset_grid
from cryomath.inference.scores import gaussian_pose_scores
from cryomath.projection import VolumeSpectrum
from cryomath.so3.grids import healpix_poses, healpix_poses_at

_CHILD_OFFSETS = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]) / 4
_PSI_CHILDREN = torch.tensor([-1.0, 1.0]) / 4


@dataclass(frozen=True)
class HierarchicalSearch:
    """The search's grid and schedule: ``base_order`` then ``levels`` refinements (final
    angular step ``60 / 2^(base_order + levels)`` degrees, offset step
    ``offset_step_px / 2^levels``), ``keep`` hypotheses per image and level, offsets within
    ``offset_range_px`` of the box centre at first, the band from ``base_shell`` to
    ``final_shell``."""

    base_order: int = 2
    levels: int = 4
    keep: int = 8
    offset_range_px: float = 6.0
    offset_step_px: float = 2.0
    base_shell: int = 6
    final_shell: int = 16

    @property
    def final_step_degrees(self) -> float:
        return 60.0 / 2 ** (self.base_order + self.levels)

    @property
    def final_offset_step_px(self) -> float:
        return self.offset_step_px / 2**self.levels

    def shell(self, level: int) -> int:
        """The last shell scored at ``level`` (0: the base grid)."""
        if self.levels == 0:
            return self.final_shell
        return round(self.base_shell + (self.final_shell - self.base_shell) * level / self.levels)

    def check(self, image_size: int) -> None:
        if not (0 <= self.base_order <= 4 and 0 <= self.levels and self.base_order
                + self.levels <= 8):  # fmt: skip
            raise InvalidInputError(
                f"need base order in 0..4 and base order + levels <= 8, got {self.base_order} "
                f"and {self.levels}"
            )
        if self.keep < 1:
            raise InvalidInputError(f"keep must be >= 1, got {self.keep}")
        if not 1 <= self.base_shell <= self.final_shell <= image_size // 2 - 1:
            raise InvalidInputError(
                f"need 1 <= base shell <= final shell <= {image_size // 2 - 1}, got "
                f"{self.base_shell} and {self.final_shell}"
            )


@dataclass
class PoseEstimate:
    """Each image's best hypothesis: pose A ``rotations (B, 3, 3)``, content ``shifts_px
    (B, 2)`` and its ``log_likelihood (B,)`` over the final band."""

    rotations: torch.Tensor
    shifts_px: torch.Tensor
    log_likelihood: torch.Tensor


def _project(spectrum: VolumeSpectrum, rotations: torch.Tensor, max_shell: int, dtype):
    """Projections ``(..., n, n // 2 + 1)`` of one map at ``rotations (..., 3, 3)``."""
    flat = project_references(spectrum, rotations.reshape(-1, 3, 3), dtype, max_shell)
    return flat.unflatten(0, rotations.shape[:-2])


def hierarchical_pose_search(
    batch: ParticleBatch, spectrum: VolumeSpectrum, noise: NoiseSpectrum,
    search: HierarchicalSearch, base_projections: torch.Tensor | None = None,
) -> PoseEstimate:  # fmt: skip
    """The batch's best hypotheses against one prepared map (``spectrum`` of one ``(n, n, n)``
    volume) by the module's search; ``base_projections``: the base grid's projections at the
    base band (:func:`base_projections`), when many batches share them."""
    n = batch.image_size
    search.check(n)
    dtype, device = batch.dtype, batch.device
    n_psi = 6 * 2**search.base_order
    grid = offset_grid(search.offset_range_px, search.offset_step_px, dtype, device)
    if base_projections is None:
        base_projections = base_projections_of(spectrum, search, dtype)
    scores = gaussian_pose_scores(batch, base_projections.to(device), grid, noise,
                                  search.shell(0))  # fmt: skip
    r = scores.shape[-1]
    best = scores.flatten(1).topk(min(search.keep, scores[0].numel()), 1)
    pixels, psi = (best.indices % r) // n_psi, ((best.indices % r) % n_psi).to(dtype) * (
        360.0 / n_psi)  # fmt: skip
    shifts, log_p = grid[best.indices // r], best.values
    step_psi, step_t = 360.0 / n_psi, search.offset_step_px
    for level in range(1, search.levels + 1):
        order = search.base_order + level
        pixels = 4 * pixels[..., None] + torch.arange(4, device=device)  # (B, k, 4)
        child_psi = psi[..., None] + _PSI_CHILDREN.to(device, dtype) * step_psi  # (B, k, 2)
        rotations = healpix_poses_at(order, pixels[..., None], child_psi[..., None, :], dtype)
        b, k = pixels.shape[:2]
        own = _project(spectrum, rotations.reshape(b * k, 8, 3, 3), search.shell(level), dtype)
        rows = torch.arange(b, device=device).repeat_interleave(k)
        parents = batch.subset(rows)
        ramp = phase_ramp((n, n), -shifts.reshape(-1, 2), rfft=True)  # centred on the parent
        parents = replace(parents, spectra=parents.spectra * ramp)
        offsets = _CHILD_OFFSETS.to(device, dtype) * step_t
        scores = gaussian_pose_scores(parents, own.to(device), offsets, noise, search.shell(level))
        scores = scores.reshape(b, k * 4 * 8)  # (parent, offset, direction child, psi child)
        best = scores.topk(min(search.keep, scores.shape[1]), 1)
        parent, rest = best.indices // 32, best.indices % 32
        s, child = rest // 8, rest % 8
        pixels = pixels.gather(1, parent[..., None].expand(-1, -1, 4)).gather(
            2, (child // 2)[..., None])[..., 0]  # fmt: skip
        psi = child_psi.gather(1, parent[..., None].expand(-1, -1, 2)).gather(
            2, (child % 2)[..., None])[..., 0]  # fmt: skip
        shifts = shifts.gather(1, parent[..., None].expand(-1, -1, 2)) + offsets[s]
        log_p = best.values
        step_psi, step_t = step_psi / 2, step_t / 2
    order = search.base_order + search.levels
    rotations = healpix_poses_at(order, pixels[:, 0], psi[:, 0], dtype)
    return PoseEstimate(rotations, shifts[:, 0], log_p[:, 0])


def base_projections_of(spectrum: VolumeSpectrum, search: HierarchicalSearch, dtype):
    """``(R, n, n // 2 + 1)`` projections of the base grid at the base band."""
    poses = healpix_poses(search.base_order, torch.float64, spectrum.data.device)
    return _project(spectrum, poses, search.shell(0), dtype)


def leaf_grid(search: HierarchicalSearch, dtype=torch.float64, device=None):
    """``(rotations (R, 3, 3), shifts_px (S, 2))``: every leaf of the search's last level (each
    pose with each offset), what an exhaustive search over the same grid scores."""
    order, levels = search.base_order + search.levels, search.levels
    step_psi = 360.0 / (6 * 2**search.base_order)
    fine = (torch.arange(2**levels, dtype=dtype, device=device) + 0.5) / 2**levels - 0.5
    base_psi = torch.arange(6 * 2**search.base_order, dtype=dtype, device=device) * step_psi
    psi = (base_psi[:, None] + fine * step_psi).reshape(-1)
    pixels = torch.arange(12 * 4**order, device=device)
    rotations = healpix_poses_at(order, pixels[:, None], psi[None, :], dtype).reshape(-1, 3, 3)
    base = offset_grid(search.offset_range_px, search.offset_step_px, dtype, device)
    sub = fine * search.offset_step_px
    sub = torch.stack(torch.meshgrid(sub, sub, indexing="xy"), -1).reshape(-1, 2)
    return rotations, (base[:, None] + sub[None]).reshape(-1, 2)


def exhaustive_pose_search(
    batch: ParticleBatch, spectrum: VolumeSpectrum, noise: NoiseSpectrum,
    search: HierarchicalSearch, chunk: int = 4096,
) -> PoseEstimate:  # fmt: skip
    """The best leaf of :func:`leaf_grid` for each image, every leaf scored at the final band
    (small grids only: the oracle :func:`hierarchical_pose_search` is tested against)."""
    search.check(batch.image_size)
    rotations, shifts = leaf_grid(search, batch.dtype, batch.device)
    best = torch.full((len(batch),), -math.inf, dtype=batch.dtype, device=batch.device)
    where = torch.zeros((len(batch), 2), dtype=torch.long, device=batch.device)
    for start in range(0, len(rotations), chunk):
        part = rotations[start : start + chunk]
        proj = _project(spectrum, part, search.final_shell, batch.dtype)
        scores = gaussian_pose_scores(batch, proj, shifts, noise, search.final_shell)
        value, index = scores.flatten(1).max(1)
        better = value > best
        best = torch.where(better, value, best)
        pair = torch.stack([index // len(part), start + index % len(part)], -1)
        where = torch.where(better[:, None], pair, where)
    return PoseEstimate(rotations[where[:, 1]], shifts[where[:, 0]], best)
