"""Atoms to density on a voxel grid, and straight to projection images.

Grid (docs/conventions.md): voxel ``(i_z, i_y, i_x)`` sits at ``origin + (i_x, i_y, i_z) *
voxel_size`` Angstrom, the MRC reader's origin, so a rendered map overlays its model in any
viewer. Each atom is the sum of its five Gaussians (``atoms.scattering``), widened by its
B-factor and, for ``resolution_angstrom``, by Chimera molmap's Gaussian (sigma =
resolution / (pi sqrt 2)); values are exact Gaussians at voxel centres, cut off beyond
``cutoff_sigmas`` of each atom's widest Gaussian. Atoms go in chunks, so memory stays bounded.
"""

import math

import numpy as np
import torch

from cryomath.atoms.model import Atoms
from cryomath.atoms.scattering import molmap_sigma_angstrom, peng_coefficients
from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError


def _widths(atoms: Atoms, use_bfactors: bool, resolution_angstrom: float | None):
    a, b = peng_coefficients(atoms.elements)
    if use_bfactors:
        b = b + atoms.bfactors_angstrom2[:, None]
    if resolution_angstrom:
        b = b + 8 * math.pi**2 * molmap_sigma_angstrom(resolution_angstrom) ** 2
    return a * atoms.occupancies[:, None], b


def map_from_model(
    atoms: Atoms,
    voxel_size_angstrom: float,
    resolution_angstrom: float | None,
    margin_angstrom: float = 15.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, np.ndarray]:
    """A cubic ``(z, y, x)`` map of ``atoms`` (even box: the model's diameter about its centroid
    plus ``margin_angstrom`` on each side) and its origin ``(x, y, z)`` Angstrom."""
    positions = atoms.positions_angstrom
    if not len(positions):
        raise InvalidInputError("the model has no atoms")
    centre = positions.mean(0)
    radius = float(np.linalg.norm(positions - centre, axis=1).max())
    n = math.ceil((2 * (radius + margin_angstrom)) / voxel_size_angstrom)
    n += n % 2
    origin = centre - (n // 2) * voxel_size_angstrom
    volume = render_potential(
        atoms, (n, n, n), voxel_size_angstrom, origin,
        resolution_angstrom=resolution_angstrom, dtype=dtype,
    )  # fmt: skip
    return volume, origin


def render_potential(
    atoms: Atoms,
    shape: tuple[int, int, int],
    voxel_size_angstrom: float,
    origin_angstrom=(0.0, 0.0, 0.0),
    use_bfactors: bool = True,
    resolution_angstrom: float | None = None,
    cutoff_sigmas: float = 4.0,
    dtype: torch.dtype = torch.float32,
    device=None,
    chunk_atoms: int = 2048,
) -> torch.Tensor:
    """``(z, y, x)`` potential of ``atoms`` sampled at voxel centres."""
    if voxel_size_angstrom <= 0:
        raise InvalidInputError("voxel size must be positive")
    a, b = _widths(atoms, use_bfactors, resolution_angstrom)
    sigma_max = float(np.sqrt(b.max() / (8 * math.pi**2)))
    half = math.ceil(cutoff_sigmas * sigma_max / voxel_size_angstrom)
    # the map, and per chunk of atoms their (2 half + 1)^3 neighbourhoods (a few arrays each)
    chunk = min(chunk_atoms, len(atoms.positions_angstrom))
    footprint = 8 * math.prod(shape) + 64 * chunk * (2 * half + 1) ** 3
    check_memory(footprint, f"a {shape} map at {voxel_size_angstrom:g} A", device)
    offsets = torch.arange(-half, half + 1, device=device)
    oz, oy, ox = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
    offsets = torch.stack([ox, oy, oz], -1).reshape(-1, 3)  # (x, y, z)
    size = torch.tensor(shape[::-1], device=device)  # (nx, ny, nz)
    out = torch.zeros(int(np.prod(shape)), dtype=torch.float64, device=device)
    origin = np.asarray(origin_angstrom, dtype=np.float64)
    grid_pos = (atoms.positions_angstrom - origin) / voxel_size_angstrom  # in voxels
    for start in range(0, len(grid_pos), chunk_atoms):
        p = torch.as_tensor(grid_pos[start : start + chunk_atoms], device=device)
        ac = torch.as_tensor(a[start : start + chunk_atoms], device=device)
        bc = torch.as_tensor(b[start : start + chunk_atoms], device=device)
        nearest = torch.round(p).long()
        index = nearest[:, None, :] + offsets[None]  # (m, K, 3)
        inside = ((index >= 0) & (index < size)).all(-1)
        d2 = (((index - p[:, None, :]) * voxel_size_angstrom) ** 2).sum(-1)  # Angstrom^2
        amplitude = ac * (4 * math.pi / bc) ** 1.5  # (m, 5)
        values = (
            amplitude[:, None, :] * torch.exp(-4 * math.pi**2 * d2[..., None] / bc[:, None, :])
        ).sum(-1)
        flat = (index[..., 2] * size[1] + index[..., 1]) * size[0] + index[..., 0]
        out.index_add_(0, flat[inside], values[inside])
    return out.reshape(shape).to(dtype)


def project_atoms(
    atoms: Atoms,
    rotations: torch.Tensor,
    image_size: int,
    pixel_size_angstrom: float,
    center_angstrom=None,
    use_bfactors: bool = True,
    resolution_angstrom: float | None = None,
) -> torch.Tensor:
    """``(..., n, n)`` projections of ``atoms`` at poses ``rotations (..., 3, 3)`` (RELION's A)
    directly from line integrals of the Gaussians (separable, so exact on the whole image: no
    cut-off): an atom at ``p`` (relative to
    ``center_angstrom``, default the model's centroid) lands at ``(A p)_xy`` from pixel
    ``n // 2``. Amplitude: the sum along z of ``render_potential`` on a grid of this pixel size."""
    a, b = _widths(atoms, use_bfactors, resolution_angstrom)
    dtype = rotations.dtype
    center = (
        atoms.positions_angstrom.mean(0) if center_angstrom is None else np.asarray(center_angstrom)
    )
    p = torch.as_tensor(atoms.positions_angstrom - center, dtype=dtype)
    a_t, b_t = torch.as_tensor(a, dtype=dtype), torch.as_tensor(b, dtype=dtype)
    # per-voxel sum along z = integral / voxel; 2-D Gaussians evaluated at pixel centres
    amplitude = a_t * (4 * math.pi / b_t) / pixel_size_angstrom  # (m, 5)
    axis = (torch.arange(image_size, dtype=dtype) - image_size // 2) * pixel_size_angstrom
    batch = rotations.shape[:-2]
    images = []
    for r in rotations.reshape(-1, 3, 3):
        xy = (p @ r.T)[:, :2]  # (m, 2)
        dx2 = (axis[None, :] - xy[:, :1]) ** 2  # (m, n)
        dy2 = (axis[None, :] - xy[:, 1:]) ** 2
        # separable Gaussians: sum_atoms sum_i amp * gy(y) gx(x)
        k = 4 * math.pi**2 / b_t  # (m, 5)
        gx = torch.exp(-k[:, :, None] * dx2[:, None, :])  # (m, 5, n)
        gy = torch.exp(-k[:, :, None] * dy2[:, None, :]) * amplitude[:, :, None]
        images.append(torch.einsum("aiy,aix->yx", gy, gx))
    return torch.stack(images).reshape(*batch, image_size, image_size)
