"""Map-to-map alignment: VESPER's density-vector global search on a uniform SO(3) grid, then
continuous refinement on the fine maps. ``x_ref = R x_query + T`` (Angstrom, each map's own
coordinates, origins included as ``cryomath.io`` reads them)."""

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError, check_positive
from cryomath.fitting.preprocess import (
    automatic_threshold,
    coarse_grid,
    fill_constant_background,
    threshold_for_mass,
    threshold_for_volume,
)
from cryomath.fitting.refine import pyramid, refine_fits
from cryomath.fitting.scores import score_field, z_scores
from cryomath.fitting.search import global_search
from cryomath.fourier.crop import crop_or_pad
from cryomath.so3.grids import local_grid, super_fibonacci
from cryomath.so3.quaternion import matrix_from_quaternion
from cryomath.so3.symmetry import Symmetry, as_point_group


@dataclass
class MapFit:
    """One fit ``x_ref = R x_query + T``: ``rotation_matrix (3, 3)``, ``translation_angstrom
    (3,)``, the search ``score`` (``fitting.scores``), its ``z_score`` and VESPER's
    ``normalized_z_score`` against all rotations, and, refined, the ``correlation`` about the
    mean over the query's voxels above its threshold."""

    rotation_matrix: torch.Tensor
    translation_angstrom: torch.Tensor
    score: float
    z_score: float = float("nan")
    normalized_z_score: float = float("nan")
    correlation: float | None = None


def _same_box(volume, voxel, origin, spacing, box):
    coarse, actual, coarse_origin = coarse_grid(volume, voxel, origin, spacing)
    m = coarse.shape[-1]
    if m == box:
        return coarse, actual, coarse_origin
    # pad or crop the coarse map to the common box around its centre voxel
    centre = coarse_origin + (m // 2) * actual
    return crop_or_pad(coarse, (box, box, box)), actual, centre - (box // 2) * actual


def _threshold(coarse, spacing, fine, fine_voxel, value, mass_kda):
    """The threshold on the coarse map: for a ``value`` given on the ``fine`` map (as given),
    the level enclosing the same volume (resampling lowers peaks, so the value itself may
    leave nothing); else the level enclosing ``mass_kda`` of protein; else the automatic rule
    (mean + 2 standard deviations)."""
    if value is not None and mass_kda is not None:
        raise InvalidInputError("give a threshold or a mass, not both")
    if value is not None:
        return threshold_for_volume(coarse, spacing, float((fine > value).sum()) * fine_voxel**3)
    if mass_kda is not None:
        return threshold_for_mass(coarse, spacing, mass_kda)
    return automatic_threshold(coarse)


def cubic(volume: torch.Tensor) -> torch.Tensor:
    """Zero-pad a ``(z, y, x)`` map at the high end of each axis to a cube (voxel 0, hence the
    origin, unchanged)."""
    n = max(volume.shape)
    d, h, w = volume.shape
    return torch.nn.functional.pad(volume, (0, n - w, 0, n - h, 0, n - d))


def search_rotations(angle_step_degrees: float, dtype=torch.float64) -> torch.Tensor:
    """The global sample: ``ceil(900 (30 / step)^3)`` Super-Fibonacci rotations, the density of
    a ``step``-degree grid. At 30 degrees (900 rotations) the covering radius is 23.0 degrees,
    below VESPER's 30-degree Euler grid (756 distinct rotations, 23.6 degrees)."""
    if not 0 < angle_step_degrees <= 90:
        raise InvalidInputError(
            f"the angle step must be in (0, 90] degrees, got {angle_step_degrees}"
        )
    n = math.ceil(900 * (30 / angle_step_degrees) ** 3)
    check_memory(n * 256, f"a global search at {angle_step_degrees:g} degrees ({n} rotations)")
    return matrix_from_quaternion(super_fibonacci(n, dtype=dtype))


def _check_sizes(sizes: dict[str, float | None], shapes, device) -> None:
    """Sizes positive and finite, and the coarse grid within memory: its box is the maps'
    extent over the grid spacing; the fields, their transforms and the scores take about 64
    bytes per voxel."""
    for name, value in sizes.items():
        if value is not None:
            check_positive(value, name)
    spacing = sizes["grid_spacing_angstrom"]
    extent = max(shapes[0] * sizes["reference_voxel_size_angstrom"],
                 shapes[1] * sizes["query_voxel_size_angstrom"])  # fmt: skip
    box = round(extent / spacing)
    check_memory(64 * box**3, f"a search grid of {box}^3 voxels at {spacing:g} A", device)


def align_maps(
    reference: torch.Tensor,
    reference_voxel_size_angstrom: float,
    reference_origin_angstrom,
    query: torch.Tensor,
    query_voxel_size_angstrom: float,
    query_origin_angstrom,
    grid_spacing_angstrom: float = 7.0,
    bandwidth_angstrom: float = 16.0,
    angle_step_degrees: float | None = None,
    threshold_reference: float | None = None,
    threshold_query: float | None = None,
    mass_reference_kda: float | None = None,
    mass_query_kda: float | None = None,
    top: int = 10,
    refine: bool = True,
    score: str = "dot",
    symmetry: Symmetry = None,
    around: tuple[torch.Tensor, torch.Tensor] | None = None,
    angle_limit_degrees: float = 20.0,
    translation_radius_angstrom: float = 10.0,
) -> list[MapFit]:
    """Ranked fits of ``query`` into ``reference`` (:class:`MapFit`, best first). ``symmetry``: the
    reference's point group (RELION's setting, about its box centre): fits that differ by a
    symmetry of the reference count as one. A constant fill of a map's corners is replaced by
    its solvent level first (``fill_constant_background``). Thresholds: a value on the
    map as given (the coarse search uses the level that encloses the same volume), or the
    level enclosing ``mass_*_kda`` of protein (0.81 Da/A^3), else mean + 2 standard deviations
    of the coarse map.

    ``angle_step_degrees``: the global sample's density (``search_rotations``); by default 30
    degrees (900 rotations), or 20 (3,038) when the query encloses less than half the
    reference's volume above the thresholds (a part fitted into a whole: less signal per
    rotation, more wrong places to land).

    Local fitting: ``around = (R0, T0)`` restricts the search to rotations within
    ``angle_limit_degrees`` of ``R0`` (a lattice of ``exp`` coordinates, spacing a third of the
    angle step, at most half the limit) and to translations that put the query's centre
    within ``translation_radius_angstrom`` of where ``(R0, T0)`` puts it. The query must then
    be the smaller map (a part fitted into a whole)."""
    sizes = {
        "reference_voxel_size_angstrom": reference_voxel_size_angstrom,
        "query_voxel_size_angstrom": query_voxel_size_angstrom,
        "grid_spacing_angstrom": grid_spacing_angstrom,
        "bandwidth_angstrom": bandwidth_angstrom,
        "mass_reference_kda": mass_reference_kda,
        "mass_query_kda": mass_query_kda,
        "angle_limit_degrees": angle_limit_degrees,
    }
    if top < 1:
        raise InvalidInputError(f"top must be at least 1, got {top}")
    if not (math.isfinite(translation_radius_angstrom) and translation_radius_angstrom >= 0):
        raise InvalidInputError(
            f"translation_radius_angstrom must be >= 0, got {translation_radius_angstrom}"
        )
    for name, v in (("reference", reference), ("query", query)):
        if v.ndim != 3:
            raise InvalidInputError(f"the {name} map must be 3-D, got {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise InvalidInputError(f"the {name} map contains NaN or inf")
    for name, v, t in (("reference", reference, threshold_reference),
                       ("query", query, threshold_query)):  # fmt: skip
        if t is not None and not bool((v > t).any()):
            raise InvalidInputError(
                f"no voxel of the {name} map is above the threshold {t:g} (its maximum is "
                f"{float(v.max()):g})"
            )
    _check_sizes(sizes, (max(reference.shape), max(query.shape)), reference.device)
    reference = fill_constant_background(reference)
    query = fill_constant_background(query.to(reference.dtype))
    reference, query = cubic(reference), cubic(query)
    grid_spacing = grid_spacing_angstrom
    levels = pyramid(reference, reference_voxel_size_angstrom, reference_origin_angstrom,
                     query, query_voxel_size_angstrom, query_origin_angstrom)  # fmt: skip
    # the search grid is resampled from the first level (cheaper than from the fine maps)
    first = levels[0]
    box = max(
        round(first.reference.shape[-1] * first.reference_voxel_size_angstrom / grid_spacing),
        round(first.query.shape[-1] * first.query_voxel_size_angstrom / grid_spacing),
    )
    ref_c, spacing, ref_origin_c = _same_box(first.reference, first.reference_voxel_size_angstrom,
                                             first.reference_origin_angstrom, grid_spacing,
                                             box)  # fmt: skip
    qry_c, _, qry_origin_c = _same_box(first.query, first.query_voxel_size_angstrom,
                                       first.query_origin_angstrom, spacing, box)  # fmt: skip
    t_ref = _threshold(ref_c, spacing, reference, reference_voxel_size_angstrom,
                       threshold_reference, mass_reference_kda)  # fmt: skip
    t_qry = _threshold(qry_c, spacing, query, query_voxel_size_angstrom, threshold_query,
                       mass_query_kda)  # fmt: skip
    ref_v, vector, ref_norm = score_field(ref_c, spacing, t_ref, score, bandwidth_angstrom)
    qry_v, _, qry_norm = score_field(qry_c, spacing, t_qry, score, bandwidth_angstrom)
    operators = as_point_group(symmetry, torch.float64, reference.device)
    operators = None if len(operators) == 1 else operators
    # the fits' bookkeeping lives on the maps' device, next to the fields it indexes
    device = reference.device
    c_ref = torch.as_tensor(ref_origin_c + (box // 2) * spacing, device=device)
    c_qry = torch.as_tensor(qry_origin_c + (box // 2) * spacing, device=device)
    allowed = None
    occupied_query, occupied_reference = int((qry_c > t_qry).sum()), int((ref_c > t_ref).sum())
    if angle_step_degrees is None:  # a part fitted into a whole has less signal per rotation
        angle_step_degrees = 20.0 if 2 * occupied_query < occupied_reference else 30.0
    if around is None:
        rotations = search_rotations(angle_step_degrees, torch.float64).to(device)
    else:
        r0, t0 = (torch.as_tensor(a, dtype=torch.float64, device=device) for a in around)
        if occupied_query > occupied_reference:
            raise InvalidInputError(
                "local fitting places a part into a whole, but the query encloses more volume "
                "above its threshold than the reference: swap them, or search globally"
            )
        step = min(angle_step_degrees / 3, angle_limit_degrees / 2)
        rotations = local_grid(r0, angle_limit_degrees, step)
        allowed = ((r0 @ c_qry + t0 - c_ref) / spacing, translation_radius_angstrom / spacing)
    found = global_search(
        ref_v.float(), qry_v.float(), rotations, top=top, vector=vector, symmetry=operators,
        allowed_shift=allowed,
    )  # fmt: skip
    scale = 1.0 / (ref_norm * qry_norm)
    models = []
    for s in found.solutions:
        t = c_ref + s.shift_voxels * spacing - s.rotation @ c_qry
        models.append(MapFit(s.rotation, t, s.score * scale))
    if refine:
        starts = [(m.rotation_matrix, m.translation_angstrom) for m in models]
        centre = (np.asarray(reference_origin_angstrom)
                  + (reference.shape[-1] // 2) * reference_voxel_size_angstrom)  # fmt: skip
        fits = refine_fits(
            levels, starts, threshold_query=threshold_query, symmetry=operators,
            symmetry_centre=centre,
        )  # fmt: skip
        # the score of a refined fit: its rotation scored over all translations, as the sample
        rescored = global_search(
            ref_v.float(), qry_v.float(), torch.stack([r for r, _, _ in fits]), vector=vector
        ).rotation_scores
        models = [
            MapFit(r, t, float(v) * scale, correlation=cc)
            for (r, t, cc), v in zip(fits, rescored, strict=True)
        ]
    raw, normalized = z_scores(
        found.rotation_scores * scale, torch.tensor([m.score for m in models], device=device)
    )
    return [
        replace(m, rotation_matrix=m.rotation_matrix.to(reference.dtype),
                translation_angstrom=m.translation_angstrom.to(reference.dtype), z_score=z,
                normalized_z_score=nz)
        for m, z, nz in zip(models, raw.tolist(), normalized.tolist(), strict=True)
    ]  # fmt: skip
