"""``cryomath align-maps REF QUERY``: fit a map into another (VESPER's vectors, refined)."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import emit, write_json
from cryomath.io.atomic import check_output_path


def align_maps(
    reference: Annotated[Path, typer.Argument(help="Reference map")],
    query: Annotated[Path, typer.Argument(help="Query map, fitted into the reference")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for fits.json and the moved query")
    ] = None,
    angle_step: Annotated[float, typer.Option(help="Rotation sampling (degrees)")] = 15.0,
    voxel: Annotated[float, typer.Option(help="Coarse grid spacing (A)")] = 7.0,
    bandwidth: Annotated[float, typer.Option(help="Density-vector bandwidth (A)")] = 16.0,
    threshold_ref: Annotated[float | None, typer.Option(help="Reference threshold")] = None,
    threshold_query: Annotated[float | None, typer.Option(help="Query threshold")] = None,
    top: Annotated[int, typer.Option(help="Distinct solutions to keep")] = 10,
    no_refine: Annotated[bool, typer.Option("--no-refine", help="Skip refinement")] = False,
    score: Annotated[str, typer.Option(help="dot, overlap, cc, pcc or laplacian")] = "dot",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Global search and refinement; ``x_ref = R x_query + T`` (Angstrom, map coordinates)."""
    import torch

    from cryomath.alignment import align_maps as align
    from cryomath.alignment.refine import transform_map
    from cryomath.io import read_mrc, write_mrc
    from cryomath.so3 import relion_euler_from_matrix, rotvec_from_matrix

    if out is not None:
        for name in ("fits.json", "query_in_reference.mrc"):
            check_output_path(out / name, force)
    ref, ref_info = read_mrc(reference, dtype=np.float64)
    qry, qry_info = read_mrc(query, dtype=np.float64)
    models = align(
        torch.from_numpy(ref), float(ref_info.voxel_size_angstrom[0]), ref_info.origin_angstrom,
        torch.from_numpy(qry), float(qry_info.voxel_size_angstrom[0]), qry_info.origin_angstrom,
        voxel, bandwidth, angle_step, threshold_ref, threshold_query, top, not no_refine, score,
    )  # fmt: skip
    rows = []
    for m in models:
        r = m["rotation_matrix"]
        rows.append({
            "rotation_matrix": r.numpy(),
            "relion_euler_degrees": relion_euler_from_matrix(r).numpy(),
            "axis_angle_radians": rotvec_from_matrix(r).numpy(),
            "translation_angstrom": m["translation_angstrom"].numpy(),
            "score": m["score"],
            "z_score": m["z_score"],
            "normalized_z_score": m["normalized_z_score"],
            **({"correlation": m["correlation"]} if "correlation" in m else {}),
        })  # fmt: skip
    result = {"convention": "x_ref = R x_query + T", "models": rows}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "fits.json", result, force)
        best = models[0]
        moved = transform_map(
            torch.from_numpy(qry), float(qry_info.voxel_size_angstrom[0]), qry_info.origin_angstrom,
            best["rotation_matrix"], best["translation_angstrom"], ref.shape,
            float(ref_info.voxel_size_angstrom[0]), ref_info.origin_angstrom,
        )  # fmt: skip
        write_mrc(out / "query_in_reference.mrc", moved.numpy(), ref_info.voxel_size_angstrom,
                  ref_info.origin_angstrom, force=force)  # fmt: skip
        result["output"] = str(out)
    if json:
        emit(result, True, title="fits")
        return
    best = rows[0]
    emit({"models": len(rows), "best_relion_euler_degrees": best["relion_euler_degrees"],
          "best_translation_angstrom": best["translation_angstrom"],
          "best_correlation": best.get("correlation"),
          "best_normalized_z_score": best["normalized_z_score"]},
         False, title="map alignment")  # fmt: skip
