"""Continuous refinement of a fit ``x_ref = R x_query + T`` (Angstrom, each map's own frame).

As ChimeraX's ``fitmap``: the query's voxels above its threshold are points ``y`` with values
``q``; the reference is interpolated (trilinear) at ``R y + T`` and the correlation about the
mean of ``q`` and ``ref(R y + T)`` is maximised by BFGS (6 unknowns) on ``R = R0 exp(hat(w))``
and ``T``, in a frame centred on the points (rotations about a far-away origin are
ill-conditioned), with the analytic gradient: the interpolant's slopes (one-sided differences
inside each trilinear cell, fetched with the values) and ``so3.right_jacobian`` for ``w``.
Levels (``pyramid``): both maps Fourier-resampled to ``coarse_spacing_angstrom`` (a wide
basin, few points), then as given.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cryomath.fitting.fits import distinct
from cryomath.fitting.preprocess import automatic_threshold, coarse_grid
from cryomath.fourier.grids import grid_sample_coordinates
from cryomath.so3.lie import exp_map, right_jacobian


def voxel_positions(
    shape, voxel_size_angstrom: float, origin_angstrom, dtype, device=None
) -> torch.Tensor:
    """``(z, y, x, 3)`` positions ``(x, y, z)`` in Angstrom of every voxel of a map."""
    axes = [torch.arange(s, dtype=dtype, device=device) for s in shape]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    origin = torch.as_tensor(np.asarray(origin_angstrom), dtype=dtype, device=device)
    return torch.stack([x, y, z], -1) * voxel_size_angstrom + origin


def sample_map(volume, voxel_size_angstrom, origin_angstrom, positions) -> torch.Tensor:
    """Trilinear values of ``volume ([C,] z, y, x)`` at ``positions (..., 3)`` Angstrom, zero
    outside: ``(..., )``, or ``(C, ...)`` for a multi-channel volume."""
    origin = torch.as_tensor(
        np.asarray(origin_angstrom), dtype=positions.dtype, device=positions.device
    )
    grid = grid_sample_coordinates((positions - origin) / voxel_size_angstrom, volume.shape[-3:])
    channels = volume.reshape(1, -1, *volume.shape[-3:])
    values = F.grid_sample(
        channels, grid.reshape(1, 1, 1, -1, 3), mode="bilinear", padding_mode="zeros",
        align_corners=True,
    )  # fmt: skip
    return values.reshape(*volume.shape[:-3], *positions.shape[:-1])


def transform_map(
    query, query_voxel_size_angstrom, query_origin_angstrom, rotation, translation,
    shape, voxel_size_angstrom, origin_angstrom,
) -> torch.Tensor:  # fmt: skip
    """The query moved by ``x = R y + T`` and sampled on a ``shape`` grid of
    ``voxel_size_angstrom`` and ``origin_angstrom``: ``out(x) = query(R^T (x - T))``."""
    positions = voxel_positions(
        shape, voxel_size_angstrom, origin_angstrom, query.dtype, query.device
    )
    local = (positions - translation.to(positions)) @ rotation.to(positions)  # R^T (x - T)
    return sample_map(query, query_voxel_size_angstrom, query_origin_angstrom, local)


def _points(query, voxel, origin, threshold):
    positions = voxel_positions(query.shape, voxel, origin, query.dtype, query.device)
    inside = query > threshold
    return positions[inside], query[inside]


def _fit_of(fit):
    return fit[0], fit[1]


def _bfgs(objective, x, iterations: int, tolerance: float):
    """Minimise ``objective(x) -> (value, gradient)`` from ``x`` by BFGS with an Armijo
    backtracking line search (dense inverse Hessian: the problems here have 6 unknowns);
    returns the last accepted ``(x, value)``."""
    eye = torch.eye(len(x), dtype=x.dtype, device=x.device)
    inverse_hessian = 0.1 * eye
    value, gradient = objective(x)
    first = True
    for _ in range(iterations):
        direction = -inverse_hessian @ gradient
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            inverse_hessian = 0.1 * eye
            direction, slope = -0.1 * gradient, -0.1 * float(gradient @ gradient)
        step = 1.0
        while True:
            new_x = x + step * direction
            new_value, new_gradient = objective(new_x)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-6:
                return x, value
        s, y = new_x - x, new_gradient - gradient
        sy = float(s @ y)
        if sy > 1e-12 and first:  # scale the initial guess to the curvature seen (Nocedal-Wright)
            inverse_hessian = sy / float(y @ y) * eye
            first = False
        if sy > 1e-12:
            left = eye - torch.outer(s, y) / sy
            inverse_hessian = left @ inverse_hessian @ left.T + torch.outer(s, s) / sy
        x, value, gradient = new_x, new_value, new_gradient
        if float(s.abs().max()) < tolerance:
            break
    return x, value


def _fit(reference, voxel, origin, points, values, rotation, translation, iterations, tolerance):
    centre = points.mean(0)
    y = points - centre
    q = values - values.mean()
    q = q / q.norm().clamp(min=1e-30)
    # x = R0 exp(hat(w)) y_c + T' with T' = T + R0 c (the rotation acts about the points'
    # centre); T' moves in units of the points' radius, so both blocks move the points alike
    radius = float(y.norm(dim=-1).pow(2).mean().sqrt().clamp(min=1.0))
    t0 = translation + rotation @ centre
    delta = 1e-3 * voxel
    steps = torch.cat([torch.zeros(1, 3), torch.eye(3) * delta]).to(y)[:, None]  # (4, 1, 3)

    def objective(x):
        r = rotation @ exp_map(x[:3])
        moved = y @ r.T + t0 + radius * x[3:]
        # the value and its one-sided differences within the trilinear cell: the exact
        # slopes of the interpolant that is being maximised
        sampled = sample_map(reference, voxel, origin, moved + steps)  # (4, N)
        v = sampled[0] - sampled[0].mean()
        norm = v.norm().clamp(min=1e-30)
        cc = (q * v).sum() / norm
        # d cc / d v_i, then the chain rule through the trilinear slopes g_i
        a = q / norm - cc * v / norm**2
        g = (sampled[1:] - sampled[0]).T / delta  # (N, 3)
        grad_t = radius * (a @ g)
        grad_rot = right_jacobian(x[:3]).T @ (a[:, None] * torch.cross(y, g @ r, dim=-1)).sum(0)
        return -float(cc), -torch.cat([grad_rot, grad_t])

    x, value = _bfgs(objective, points.new_zeros(6), iterations, tolerance)
    r = rotation @ exp_map(x[:3])
    t = t0 + radius * x[3:] - r @ centre
    return r, t, -value


@dataclass
class Level:
    """One level of the refinement pyramid: both maps at one sampling (cubic, ``(z, y, x)``;
    origins are the ``(x, y, z)`` Angstrom positions of voxel 0)."""

    reference: torch.Tensor
    reference_voxel_size_angstrom: float
    reference_origin_angstrom: np.ndarray
    query: torch.Tensor
    query_voxel_size_angstrom: float
    query_origin_angstrom: np.ndarray


def pyramid(
    reference, reference_voxel_size_angstrom, reference_origin_angstrom,
    query, query_voxel_size_angstrom, query_origin_angstrom,
    coarse_spacing_angstrom: float = 4.0,
) -> list[Level]:  # fmt: skip
    """The maps as given, preceded by both Fourier-resampled to ``coarse_spacing_angstrom``
    when that is coarser than either map."""
    ref = (reference, reference_voxel_size_angstrom, reference_origin_angstrom)
    qry = (query, query_voxel_size_angstrom, query_origin_angstrom)
    fine = Level(*ref[:2], np.asarray(ref[2], dtype=np.float64),
                 *qry[:2], np.asarray(qry[2], dtype=np.float64))  # fmt: skip
    if coarse_spacing_angstrom <= max(reference_voxel_size_angstrom, query_voxel_size_angstrom):
        return [fine]
    return [Level(*coarse_grid(*ref, coarse_spacing_angstrom),
                  *coarse_grid(*qry, coarse_spacing_angstrom)), fine]  # fmt: skip


def refine_fits(
    levels: list[Level],
    starts: list[tuple[torch.Tensor, torch.Tensor]],
    threshold_query: float | None = None,
    iterations: int = 40,
    same_angle_rad: float = 0.05,
    same_shift_angstrom: float = 1.0,
    symmetry: torch.Tensor | None = None,
    symmetry_centre=(0.0, 0.0, 0.0),
) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Refined ``(R, T, correlation)`` for each distinct end point of the starting fits
    ``x_ref = R x_query + T`` through the ``levels`` (coarse to fine, see ``pyramid``), best
    correlation first. The correlation is over the query's voxels above ``threshold_query``
    (default: the automatic rule). Starts that converge on one level to one fit (within
    ``same_angle_rad`` and ``same_shift_angstrom``, modulo the reference's point group
    ``symmetry (G, 3, 3)`` about ``symmetry_centre`` (Angstrom) when given) go on as one, and
    fits whose correlation is below half the best are not taken to the next level."""
    like = levels[-1].reference  # the fits live on the maps' device and in their dtype
    fits = [(r.detach().to(like), torch.as_tensor(t).detach().to(like), 0.0) for r, t in starts]
    for i, level in enumerate(levels):
        qry = level.query
        threshold = automatic_threshold(qry) if threshold_query is None else threshold_query
        points, values = _points(
            qry, level.query_voxel_size_angstrom, level.query_origin_angstrom, threshold
        )
        if len(points) < 4:  # too few points to fit on this level
            continue
        tolerance = 1e-4 if i == len(levels) - 1 else 1e-3  # in radians and point radii
        best = fits[0][2]
        fits = [
            _fit(level.reference, level.reference_voxel_size_angstrom,
                 level.reference_origin_angstrom, points, values, r, t, iterations, tolerance)
            for r, t, cc in fits
            if cc >= 0.5 * best
        ]  # fmt: skip
        fits = distinct(
            sorted(fits, key=lambda f: -f[2]), _fit_of, same_angle_rad, same_shift_angstrom,
            operators=symmetry, centre=symmetry_centre,
        )  # fmt: skip
    return fits
