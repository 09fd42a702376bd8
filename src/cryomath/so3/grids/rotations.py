"""Grids on SO(3) and on the sphere of projection directions.

All return pose matrices A (RELION's convention) or quaternions ``(w, x, y, z)`` as stated, in
float64 unless ``dtype`` says otherwise. Counts and nominal steps:

- ``healpix_grid(order)``: RELION's sampling: HEALPix (NEST) directions with ``nside = 2^order``
  as (rot, tilt) = (phi, theta), times in-plane psi = ``i * 360 / (6 * 2^order)``:
  ``72 * 8^order`` poses, nominal step ``60 / 2^order`` degrees.
- ``hopf_grid(order)``: Yershova, Jain, LaValle & Mitchell (IJRR 2010): the same HEALPix
  directions and ``6 * 2^order`` circle points ``psi_k = (k + 1/2) 2 pi / m`` combined by the Hopf
  fibration, ``q = (cos(t/2) cos(psi/2), cos(t/2) sin(psi/2), sin(t/2) cos(phi + psi/2),
  sin(t/2) sin(phi + psi/2))`` (the grid cryoDRGN uses).
- ``super_fibonacci(n)``: Alexa, CVPR 2022, Algorithm 1: ``n`` quaternions on a spiral.
- ``even_angles(delta)``: Penczek's quasi-uniform directions (SPARX ``even_angles``): method
  ``'P'`` (rings theta_i = i delta, phi step delta / sin theta) or ``'S'`` (the generalised spiral
  of Saff & Kuijlaars 1997), restricted to the asymmetric unit of a point group.
- ``local_grid(center, radius, step)``: poses ``center @ exp(v)`` for tangent vectors v on a cubic
  lattice of spacing ``step`` inside the ball of ``radius`` (for local refinement).
"""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.conventions.relion import matrix_from_relion_euler
from cryomath.so3.grids.healpix import healpix_nest_centres, healpix_pixel_centres
from cryomath.so3.lie import exp_map
from cryomath.so3.symmetry import in_asymmetric_unit, point_group


def _check_order(order: int) -> None:
    if not 0 <= order <= 8:
        raise InvalidInputError(f"grid order must be in 0..8, got {order}")


def healpix_directions(order: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(12 * 4^order, 2)`` (rot, tilt) in degrees of the HEALPix NEST pixel centres."""
    _check_order(order)
    theta, phi = healpix_pixel_centres(2**order, nest=True, dtype=dtype, device=device)
    return torch.rad2deg(torch.stack([phi, theta], -1))


def healpix_grid(order: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(72 * 8^order, 3)`` RELION angles (rot, tilt, psi) in degrees, direction-major."""
    directions = healpix_directions(order, dtype, device)
    n_psi = 6 * 2**order
    psi = torch.arange(n_psi, dtype=dtype, device=device) * (360.0 / n_psi)
    return torch.cat(
        [
            directions[:, None, :].expand(-1, n_psi, 2),
            psi[None, :, None].expand(directions.shape[0], -1, 1),
        ],
        -1,
    ).reshape(-1, 3)


def healpix_poses(order: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(72 * 8^order, 3, 3)`` pose matrices of :func:`healpix_grid`."""
    return matrix_from_relion_euler(healpix_grid(order, dtype, device))


def healpix_poses_at(
    order: int, pixels: torch.Tensor, psi_degrees: torch.Tensor, dtype=torch.float64
) -> torch.Tensor:
    """``(..., 3, 3)`` poses of direction ``pixels`` (NEST, ``order``) and in-plane angle
    ``psi_degrees`` (broadcast together), as :func:`healpix_grid` makes them, for any psi:
    ``healpix_poses(order)[i]`` is ``pixels = i // (6 * 2^order)`` at its psi."""
    _check_order(order)
    pixels, psi = torch.broadcast_tensors(pixels, psi_degrees)
    theta, phi = healpix_nest_centres(2**order, pixels, dtype)
    angles = torch.stack([torch.rad2deg(phi), torch.rad2deg(theta), psi.to(dtype)], -1)
    return matrix_from_relion_euler(angles)


def hopf_grid(order: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(72 * 8^order, 4)`` unit quaternions of the Hopf-fibration grid."""
    _check_order(order)
    theta, phi = healpix_pixel_centres(2**order, nest=True, dtype=dtype, device=device)
    m = 6 * 2**order
    psi = (torch.arange(m, dtype=dtype, device=device) + 0.5) * (2 * math.pi / m)
    t, f, p = theta[:, None] / 2, phi[:, None], psi[None, :] / 2
    q = torch.stack(
        [
            torch.cos(t) * torch.cos(p),
            torch.cos(t) * torch.sin(p),
            torch.sin(t) * torch.cos(f + p),
            torch.sin(t) * torch.sin(f + p),
        ],
        -1,
    )
    return q.reshape(-1, 4)


# Alexa 2022: phi = sqrt(2) and psi, the real root of psi^4 = psi + 4.
_SF_PHI = math.sqrt(2.0)
_SF_PSI = 1.533751168755204288118041


def super_fibonacci(n: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(n, 4)`` unit quaternions of the Super-Fibonacci spiral (Alexa 2022, Algorithm 1)."""
    if n < 1:
        raise InvalidInputError(f"need at least one rotation, got {n}")
    s = torch.arange(n, dtype=torch.float64, device=device) + 0.5
    r = torch.sqrt(s / n)
    big_r = torch.sqrt(1.0 - s / n)
    alpha = 2 * math.pi * s / _SF_PHI
    beta = 2 * math.pi * s / _SF_PSI
    q = torch.stack(
        [
            r * torch.sin(alpha),
            r * torch.cos(alpha),
            big_r * torch.sin(beta),
            big_r * torch.cos(beta),
        ],
        -1,
    )
    return q.to(dtype)


def _direction_vectors(rot_tilt_degrees: torch.Tensor) -> torch.Tensor:
    """(rot, tilt) -> unit projection directions (the third row of A)."""
    rot, tilt = torch.deg2rad(rot_tilt_degrees).unbind(-1)
    return torch.stack(
        [torch.sin(tilt) * torch.cos(rot), torch.sin(tilt) * torch.sin(rot), torch.cos(tilt)], -1
    )


def even_angles(
    delta_degrees: float,
    method: str = "P",
    symmetry: str = "C1",
    dtype=torch.float64,
    device=None,
) -> torch.Tensor:
    """``(n, 2)`` projection directions (rot, tilt) in degrees, spaced about ``delta_degrees``,
    inside the asymmetric unit of ``symmetry`` (RELION setting). No loop depends on floating
    point reaching a bound, so steps that divide 90 (the reference's infinite loop) are fine."""
    if not 0 < delta_degrees <= 90:
        raise InvalidInputError(f"delta must be in (0, 90] degrees, got {delta_degrees}")
    delta = math.radians(delta_degrees)
    points = []
    if method.upper() == "P":
        n_rings = round(math.pi / delta)
        for i in range(n_rings + 1):
            theta = i * math.pi / n_rings
            sin_t = math.sin(theta)
            n_phi = 1 if sin_t < 1e-12 else max(1, round(2 * math.pi * sin_t / delta))
            points += [(2 * math.pi * k / n_phi, theta) for k in range(n_phi)]
    elif method.upper() == "S":
        n = max(2, round((3.6 / delta) ** 2))
        phi = 0.0
        for k in range(n):
            z = 1 - (2 * k + 1) / n
            phi = 0.0 if k == 0 else phi + 3.6 / math.sqrt(n * (1 - z * z))
            points.append((phi % (2 * math.pi), math.acos(z)))
    else:
        raise InvalidInputError(f"even_angles method must be 'P' or 'S', got {method!r}")
    angles = torch.rad2deg(torch.tensor(points, dtype=torch.float64, device=device))
    keep = in_asymmetric_unit(_direction_vectors(angles), point_group(symmetry, device=device))
    return angles[keep].to(dtype)


def local_grid(center: torch.Tensor, radius_degrees: float, step_degrees: float) -> torch.Tensor:
    """``(n, 3, 3)`` poses ``center @ exp(v)``, ``v`` on a cubic lattice of spacing ``step``
    within ``|v| <= radius`` (the centre itself included)."""
    if step_degrees <= 0 or radius_degrees < 0:
        raise InvalidInputError("local grid needs step > 0 and radius >= 0")
    k = math.floor(radius_degrees / step_degrees)
    axis = torch.arange(-k, k + 1, dtype=center.dtype, device=center.device)
    v = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    v = v[torch.linalg.vector_norm(v, dim=-1) <= radius_degrees / step_degrees + 1e-9]
    return center @ exp_map(torch.deg2rad(v * step_degrees))
