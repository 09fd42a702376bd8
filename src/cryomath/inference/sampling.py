"""The hypotheses of one iteration: orientations (global HEALPix or local around each previous
pose), offsets (a lattice in a disk around each previous offset) and the band searched.

RELION's sampling (``healpix_order``): ``12 * 4^order`` HEALPix directions times
``6 * 2^order`` in-plane angles, a nominal step of ``60 / 2^order`` degrees (7.5 at order 3);
a global search covers the asymmetric unit of the point group; a local search takes the poses
``A_prev exp(v)`` with ``v`` on a lattice of that step within 2 steps (33 poses) and a
Gaussian prior of two steps on their angle (RELION's auto-refine sets ``sigma2_rot = 4 step^2``:
a weak prior; one of one step, tried first, held 60 % of 2,000 particles at their previous pose
whatever the data said, and the maps lost resolution at each finer order).

Adaptive oversampling (RELION's ``--oversampling 1``, Scheres 2012, with cryoDRGN2's top-k
rule): a global search scores the grid of ``healpix_order``, keeps each image's
``max_significant`` most probable orientations (RELION keeps those holding 99.9 % of the
posterior, at most ``--maxsig``; when the coarse posterior is sharp that can be one wrong
parent, which a fixed budget avoids), and scores again their 8 children on the grid of the
next order: the 4 HEALPix NEST sub-pixels of the direction times the in-plane
angles ``2 psi`` and ``2 psi + 1`` (each child has one parent, so no hypothesis counts twice).
The coarse pass scores the shells up to ``coarse_shell`` only (RELION's ``coarse_size``: 1.2
times the resolution the coarse step resolves at the particle's radius, :func:`coarse_shell`):
far beyond it a pose off the coarse grid decorrelates, and the coarse likelihood would pick
parents by noise.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.act import projection_directions
from cryomath.so3.grids import healpix_poses
from cryomath.so3.lie import exp_map
from cryomath.so3.symmetry import in_asymmetric_unit

LOCAL_RADIUS_STEPS = 2.0  # 33 lattice points
# RELION's keepsafe factor for 3-D coarse passes (ml_optimiser.cpp; 1.5 in 2-D): without it
# the coarse pass dropped 42 % of the true parents of dataset (b)'s lost particles, with it 14 %
COARSE_KEEPSAFE = 1.2


@dataclass(frozen=True)
class Sampling:
    """One iteration's hypotheses: HEALPix ``healpix_order``; ``local`` searches around each
    particle's previous pose; offsets within ``offset_range_px`` of the previous offset every
    ``offset_step_px``; scores over the shells up to ``max_shell``; a global search
    ``oversample`` s (module docstring); Gaussian scores, or Poisson ones of counting images
    at ``dose_e_per_a2``. ``align=False`` (RELION's ``--skip_align``): each image's previous
    pose and offset only, a local search of one pose with ``offset_range_px`` 0."""

    healpix_order: int
    local: bool
    offset_range_px: float
    offset_step_px: float
    max_shell: int
    oversample: bool = True
    max_significant: int = 64
    mass: float = 0.999
    coarse_shell: int | None = None
    dose_e_per_a2: float | None = None  # Poisson scores of counting images (inference.poisson)
    align: bool = True

    @property
    def local_radius_steps(self) -> float:
        """How far a local search reaches from the previous pose, in steps."""
        return LOCAL_RADIUS_STEPS if self.align else 0.0

    @property
    def step_degrees(self) -> float:
        """The step of the grid the pass ends on (the children's with oversampling)."""
        order = self.healpix_order + (self.oversample and not self.local)
        return 60.0 / 2**order

    def check(self) -> None:
        if not 0 <= self.healpix_order <= 7:
            raise InvalidInputError(f"healpix order must be in 0..7, got {self.healpix_order}")
        if not (self.offset_step_px > 0 and self.offset_range_px >= 0):
            raise InvalidInputError("the offset search needs step > 0 and range >= 0")
        if not self.local and self.healpix_order > 4:
            raise InvalidInputError(
                f"a global search at HEALPix order {self.healpix_order} "
                f"({72 * 8**self.healpix_order} poses) is too large: search locally from order 4 "
                "at the latest"
            )
        if self.dose_e_per_a2 is not None and not self.dose_e_per_a2 > 0:
            raise InvalidInputError(f"the dose must be positive, got {self.dose_e_per_a2}")
        if self.max_significant < 1 or not 0 < self.mass <= 1:
            raise InvalidInputError("max_significant must be >= 1 and mass in (0, 1]")
        if not self.align and (not self.local or self.offset_range_px != 0):
            raise InvalidInputError("without alignment the search is local with no offsets")


def offset_grid(range_px: float, step_px: float, dtype=torch.float64, device=None):
    """``(S, 2)`` offsets ``(x, y)`` in pixels: a square lattice of ``step_px`` within a disk of
    ``range_px`` (the origin included)."""
    k = math.floor(range_px / step_px + 1e-9)
    if (2 * k + 1) ** 2 > 100_000:
        raise InvalidInputError(
            f"an offset search of {(2 * k + 1) ** 2} lattice points ({range_px:g} px every "
            f"{step_px:g} px): raise the step or lower the range"
        )
    axis = torch.arange(-k, k + 1, dtype=dtype, device=device) * step_px
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    return grid[torch.linalg.vector_norm(grid, dim=-1) <= range_px + 1e-9]


def _asymmetric(order: int, group: torch.Tensor, device) -> torch.Tensor:
    """Indices into ``healpix_poses(order)`` of the poses in the asymmetric unit of ``group``."""
    poses = healpix_poses(order, torch.float64, device)
    if len(group) == 1:
        return torch.arange(len(poses), device=device)
    return in_asymmetric_unit(projection_directions(poses), group.to(poses)).nonzero()[:, 0]


def global_orientations(order: int, group: torch.Tensor, dtype=torch.float64, device=None):
    """``(R, 3, 3)`` HEALPix poses of ``order`` whose directions lie in the asymmetric unit of
    the point ``group (G, 3, 3)``."""
    return healpix_poses(order, dtype, device)[_asymmetric(order, group, device)]


def oversampled_orientations(order: int, group: torch.Tensor, dtype=torch.float64, device=None):
    """The children ``(8 R, 3, 3)`` on the grid of ``order + 1`` of the ``R`` poses of
    :func:`global_orientations`: coarse pose ``r``'s are rows ``8 r`` to ``8 r + 7``."""
    coarse = _asymmetric(order, group, device)
    n_psi = 6 * 2**order
    direction, psi = coarse // n_psi, coarse % n_psi
    a = torch.arange(4, device=device)[:, None]
    b = torch.arange(2, device=device)[None, :]
    child = (4 * direction[:, None, None] + a) * (2 * n_psi) + 2 * psi[:, None, None] + b
    return healpix_poses(order + 1, dtype, device)[child.reshape(-1)]


def local_steps(radius_steps: float = LOCAL_RADIUS_STEPS, dtype=torch.float64, device=None):
    """``(J, 3)``: the rotation vectors of a local search in steps, the integer lattice points
    within ``radius_steps`` (33 at 2, the origin alone at 0)."""
    reach = math.floor(radius_steps)
    axis = torch.arange(-reach, reach + 1, dtype=dtype, device=device)
    v = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return v[torch.linalg.vector_norm(v, dim=-1) <= radius_steps]


def local_orientations(centres: torch.Tensor, step_degrees: float,
                       radius_steps: float = LOCAL_RADIUS_STEPS):  # fmt: skip
    """``(B, J, 3, 3)`` poses around ``centres (B, 3, 3)`` (:func:`local_steps` of
    ``radius_steps``) and the ``(J,)`` log prior of their angles (a Gaussian of two steps)."""
    v = local_steps(radius_steps, centres.dtype, centres.device)
    log_prior = -0.5 * (v * v).sum(-1) / 4  # |v| in steps; the prior's sd is two steps
    return centres[:, None] @ exp_map(v * math.radians(step_degrees)), log_prior


def coarse_shell(step_degrees: float, radius_px: float, image_size: int) -> int:
    """The last shell of ``image_size`` images that the coarse pass of a grid of
    ``step_degrees`` scores for a particle of ``radius_px`` (RELION's ``coarse_size / 2``,
    ``ml_optimiser.cpp``: the resolution at which the step's arc at the radius is
    ``COARSE_KEEPSAFE`` periods, rounded up)."""
    arc_px = math.radians(step_degrees) * radius_px
    return max(1, math.ceil(COARSE_KEEPSAFE * image_size / arc_px))
