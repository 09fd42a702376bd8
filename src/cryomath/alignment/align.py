"""Map-to-map alignment: VESPER's density-vector global search on a uniform SO(3) grid, then
continuous refinement on the fine maps. ``x_ref = R x_query + T`` (Angstrom, each map's own
coordinates, origins included as ``cryomath.io`` reads them)."""

import math

import torch

from cryomath.alignment.preprocess import automatic_threshold, coarse_grid
from cryomath.alignment.refine import refine_fit
from cryomath.alignment.scores import score_field, z_scores
from cryomath.alignment.search import distinct, global_search
from cryomath.errors import InvalidInputError
from cryomath.fourier.crop import crop_or_pad
from cryomath.so3.grids import healpix_poses, local_grid
from cryomath.so3.metrics import geodesic_distance


def _same_box(volume, voxel, origin, spacing, box):
    coarse, actual, coarse_origin = coarse_grid(volume, voxel, origin, spacing)
    m = coarse.shape[-1]
    if m == box:
        return coarse, actual, coarse_origin
    # pad or crop the coarse map to the common box around its centre voxel
    centre = coarse_origin + (m // 2) * actual
    return crop_or_pad(coarse, (box, box, box)), actual, centre - (box // 2) * actual


def cubic(volume: torch.Tensor) -> torch.Tensor:
    """Zero-pad a ``(z, y, x)`` map at the high end of each axis to a cube (voxel 0, hence the
    origin, unchanged)."""
    n = max(volume.shape)
    d, h, w = volume.shape
    return torch.nn.functional.pad(volume, (0, n - w, 0, n - h, 0, n - d))


def align_maps(
    reference: torch.Tensor,
    reference_voxel: float,
    reference_origin,
    query: torch.Tensor,
    query_voxel: float,
    query_origin,
    spacing_angstrom: float = 7.0,
    bandwidth_angstrom: float = 16.0,
    angle_step_degrees: float = 15.0,
    threshold_reference: float | None = None,
    threshold_query: float | None = None,
    top: int = 10,
    refine: bool = True,
    score: str = "dot",
) -> list[dict]:
    """Ranked fits of ``query`` into ``reference``: dicts with ``rotation_matrix``,
    ``translation_angstrom``, ``score`` (``alignment.scores``), ``z_score``,
    ``normalized_z_score`` and, refined, ``correlation``; best first."""
    for name, v in (("reference", reference), ("query", query)):
        if v.ndim != 3:
            raise InvalidInputError(f"the {name} map must be 3-D, got {tuple(v.shape)}")
    reference, query = cubic(reference.double()), cubic(query.double())
    box = max(
        round(reference.shape[-1] * reference_voxel / spacing_angstrom),
        round(query.shape[-1] * query_voxel / spacing_angstrom),
    )
    ref_c, spacing, ref_origin_c = _same_box(
        reference, reference_voxel, reference_origin, spacing_angstrom, box
    )
    qry_c, _, qry_origin_c = _same_box(query, query_voxel, query_origin, spacing, box)
    t_ref = automatic_threshold(ref_c) if threshold_reference is None else threshold_reference
    t_qry = automatic_threshold(qry_c) if threshold_query is None else threshold_query
    ref_v, vector, ref_norm = score_field(ref_c, spacing, t_ref, score, bandwidth_angstrom)
    qry_v, _, qry_norm = score_field(qry_c, spacing, t_qry, score, bandwidth_angstrom)
    order = max(0, math.ceil(math.log2(60 / angle_step_degrees)))
    rotations = healpix_poses(order)
    found = global_search(ref_v, qry_v, rotations, top=top, vector=vector)
    solutions = found.solutions
    # VESPER's local step: a finer grid (radius = the global step, 3-degree spacing) around each
    step = math.radians(60 / 2**order)
    solutions = [
        global_search(
            ref_v, qry_v, local_grid(s.rotation, math.degrees(step), 3.0), top=1, vector=vector
        ).solutions[0]
        for s in solutions
    ]
    solutions = distinct(solutions, top)  # local steps can land two starts in one basin
    scale = 1.0 / (ref_norm * qry_norm)
    c_ref = ref_origin_c + (box // 2) * spacing
    c_qry = qry_origin_c + (box // 2) * spacing
    models = []
    for s in solutions:
        r = s.rotation
        t = torch.as_tensor(c_ref) + s.shift_voxels * spacing - r @ torch.as_tensor(c_qry)
        model = {"rotation_matrix": r, "translation_angstrom": t, "score": s.score * scale}
        if refine:
            r, t, cc = refine_fit(
                reference, reference_voxel, reference_origin, query, query_voxel, query_origin, r, t
            )
            model.update(rotation_matrix=r, translation_angstrom=t, correlation=cc)
        models.append(model)
    raw, normalized = z_scores(
        found.rotation_scores * scale, torch.tensor([m["score"] for m in models])
    )
    for m, z, nz in zip(models, raw.tolist(), normalized.tolist(), strict=True):
        m["z_score"], m["normalized_z_score"] = z, nz
    key = "correlation" if refine else "score"
    ranked = sorted(models, key=lambda m: -m[key])
    kept: list[dict] = []  # refinement can bring two starts to one fit: keep the better
    for m in ranked:
        if not any(
            float(geodesic_distance(k["rotation_matrix"], m["rotation_matrix"])) < 0.3
            and float((k["translation_angstrom"] - m["translation_angstrom"]).norm()) < 2 * spacing
            for k in kept
        ):
            kept.append(m)
    return kept
