"""``cryomath align-maps REF QUERY`` (fit one map or model into another: VESPER's vectors, a
uniform SO(3) search, refinement) and ``cryomath search-maps QUERY DIR`` (rank a folder of maps
by how well the query fits each)."""

import json as json_module
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import Device, Force, Json, Scheduler, Symmetry, emit
from cryomath.errors import InvalidInputError
from cryomath.io.atomic import atomic_output, check_output_path, writable_directory
from cryomath.io.results import write_json


def _parse_pose(text: str):
    """``(R, T)`` from a fits.json (its best model) or ``rot,tilt,psi,tx,ty,tz`` (RELION Euler
    degrees, Angstrom)."""
    import torch

    from cryomath.so3 import matrix_from_relion_euler

    path = Path(text)
    if path.suffix == ".json" and path.exists():
        best = json_module.loads(path.read_text())["models"][0]
        return (
            torch.tensor(best.rotation_matrix, dtype=torch.float64),
            torch.tensor(best.translation_angstrom, dtype=torch.float64),
        )
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise InvalidInputError(
            f"--around {text!r}: give a fits.json or rot,tilt,psi,tx,ty,tz (degrees, Angstrom)"
        )
    rotation = matrix_from_relion_euler(torch.tensor(values[:3], dtype=torch.float64))
    return rotation, torch.tensor(values[3:], dtype=torch.float64)


def chimerax_command(reference: Path, query: Path, rotation, translation) -> str:
    """A ChimeraX script placing the query (model #2) on the reference (#1): its position
    matrix is the fit ``x_ref = R x_query + T`` (scene = reference coordinates)."""
    r, t = np.asarray(rotation, dtype=np.float64), np.asarray(translation, dtype=np.float64)
    matrix = ",".join(f"{v:.6f}" for row in np.concatenate([r, t[:, None]], 1) for v in row)
    return (
        f"open {reference.resolve()}\nopen {query.resolve()}\n"
        f"view matrix models #2,{matrix}\nview\n"
    )


def _write_vectors(out: Path, ref, qry, best, grid_spacing, bandwidth, force) -> None:
    """Density vectors of both maps on the coarse grid as PDB pseudo-atoms, the query's moved
    by the best fit into the reference frame."""
    from cryomath.fitting.preprocess import automatic_threshold, coarse_grid, density_vectors
    from cryomath.fitting.refine import voxel_positions
    from cryomath.io.models import write_vectors_pdb

    r = best.rotation_matrix.cpu().double().numpy()
    t = best.translation_angstrom.cpu().double().numpy()
    for name, (volume, voxel_size, origin), moved in (
        ("reference_vectors.pdb", ref, False),
        ("query_vectors.pdb", qry, True),
    ):
        coarse, spacing, coarse_origin = coarse_grid(
            volume.double(), voxel_size, origin, grid_spacing
        )
        vectors = density_vectors(coarse, spacing, automatic_threshold(coarse), bandwidth)
        occupied = vectors.abs().sum(0) > 0
        positions = voxel_positions(coarse.shape, spacing, coarse_origin, coarse.dtype)[occupied]
        v = vectors.permute(1, 2, 3, 0)[occupied].numpy()
        p = positions.numpy()
        if moved:
            p, v = p @ r.T + t, v @ r.T
        write_vectors_pdb(out / name, p, v, spacing / 2, force)


def align_maps(
    reference: Annotated[Path, typer.Argument(help="Reference map, or PDB/mmCIF model")],
    query: Annotated[Path, typer.Argument(help="Query map or model, fitted into the reference")],
    out: Annotated[Path | None, typer.Option(help="Folder for the outputs")] = None,
    score: Annotated[str, typer.Option(help="dot, overlap, cc, pcc or laplacian")] = "dot",
    angle_step: Annotated[
        float | None, typer.Option(help="Sample density in degrees [30; 20 for a part]")
    ] = None,
    grid_spacing: Annotated[
        float, typer.Option(help="Spacing of the coarse search grid (A)")
    ] = 7.0,
    bandwidth: Annotated[float, typer.Option(help="Density-vector bandwidth (A)")] = 16.0,
    threshold_ref: Annotated[float | None, typer.Option(help="Reference threshold")] = None,
    threshold_query: Annotated[float | None, typer.Option(help="Query threshold")] = None,
    mass_ref: Annotated[float | None, typer.Option(help="Threshold by mass (kDa)")] = None,
    mass_query: Annotated[float | None, typer.Option(help="Threshold by mass (kDa)")] = None,
    top: Annotated[int, typer.Option(help="Distinct solutions to keep")] = 10,
    local: Annotated[bool, typer.Option("--local", help="Search only near --around")] = False,
    around: Annotated[
        str | None, typer.Option(help="fits.json, or rot,tilt,psi,tx,ty,tz (deg, A)")
    ] = None,
    angle_limit: Annotated[float, typer.Option(help="Local: max rotation (deg)")] = 20.0,
    translation_radius: Annotated[float, typer.Option(help="Local: max shift (A)")] = 10.0,
    no_refine: Annotated[bool, typer.Option("--no-refine", help="Skip refinement")] = False,
    symmetry: Symmetry = "C1",
    resolution: Annotated[float, typer.Option(help="Resolution for models (A)")] = 5.0,
    device: Device = "cpu",
    vectors: Annotated[bool, typer.Option("--vectors", help="Write vectors as PDB")] = False,
    check_hand: Annotated[
        bool, typer.Option("--check-hand", help="Also fit the mirrored query")
    ] = False,
    force: Force = False,
    json: Json = False,
) -> None:
    """Global (or local) search and refinement; ``x_ref = R x_query + T`` (Angstrom, each
    input's own coordinates, origins included). No rotation maps a structure onto its mirror
    image: ``--check-hand`` also fits the query's mirror image and reports ``hand: opposite``
    when that fits clearly better (the two maps were reconstructed with opposite hands)."""
    from cryomath.devices import resolve_device
    from cryomath.fitting import align_maps as align
    from cryomath.fitting import check_hand as hand_check
    from cryomath.fitting.refine import transform_map
    from cryomath.io import write_mrc
    from cryomath.io.models import is_model_path, write_moved_model
    from cryomath.pipelines import fit_rows, read_fit_pair

    device = resolve_device(device)
    if local and around is None:
        raise InvalidInputError("--local needs --around (a fits.json or rot,tilt,psi,tx,ty,tz)")
    start = _parse_pose(around) if local else None
    names = ["fits.json", "query_in_reference.mrc", "chimerax.cxc"]
    moved_model = None
    if is_model_path(query):
        moved_model = "query_fitted" + (".cif" if ".cif" in query.name.lower() else ".pdb")
        names.append(moved_model)
    if vectors:
        names += ["reference_vectors.pdb", "query_vectors.pdb"]
    if out is not None:
        for name in names:
            check_output_path(out / name, force)
    ref, qry = read_fit_pair(reference, query, resolution)
    models = align(
        ref[0].to(device), ref[1], ref[2], qry[0].to(device), qry[1], qry[2],
        grid_spacing_angstrom=grid_spacing, bandwidth_angstrom=bandwidth,
        angle_step_degrees=angle_step,
        threshold_reference=threshold_ref, threshold_query=threshold_query,
        mass_reference_kda=mass_ref, mass_query_kda=mass_query, top=top, refine=not no_refine,
        score=score, symmetry=symmetry, around=start, angle_limit_degrees=angle_limit,
        translation_radius_angstrom=translation_radius,
    )  # fmt: skip
    rows = fit_rows(models)
    result = {"convention": "x_ref = R x_query + T", "models": rows}
    if check_hand:
        hand = hand_check(
            ref[0].to(device), ref[1], ref[2], qry[0].to(device), qry[1], qry[2],
            models[0].normalized_z_score, grid_spacing_angstrom=grid_spacing,
            bandwidth_angstrom=bandwidth, angle_step_degrees=angle_step,
            threshold_reference=threshold_ref, threshold_query=threshold_query, symmetry=symmetry,
        )  # fmt: skip
        result["mirrored_normalized_z_score"] = hand.mirrored_normalized_z_score
        result["hand"] = hand.hand
    if out is not None:
        writable_directory(out)
        best = models[0]
        r, t = best.rotation_matrix.cpu().double(), best.translation_angstrom.cpu().double()
        moved = transform_map(qry[0].double(), qry[1], qry[2], r, t, ref[0].shape, ref[1], ref[2])
        write_mrc(out / "query_in_reference.mrc", moved.numpy(), ref[1], tuple(ref[2]),
                  force=force)  # fmt: skip
        with atomic_output(out / "chimerax.cxc", force) as tmp:
            tmp.write_text(chimerax_command(reference, query, r.numpy(), t.numpy()))
        if moved_model:
            write_moved_model(query, out / moved_model, r.numpy(), t.numpy(), force)
        if vectors:
            _write_vectors(out, ref, qry, best, grid_spacing, bandwidth, force)
        result["output"] = str(out)
        write_json(out / "fits.json", result, force)
    if json:
        emit(result, True, title="fits")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fits (x_ref = R x_query + T)")
    for column in ("rank", "RELION rot, tilt, psi (deg)", "T (A)", "score", "Z", "norm. Z", "cc"):
        table.add_column(column)
    for i, row in enumerate(rows, 1):
        cc = row.get("correlation")
        table.add_row(
            str(i), ", ".join(f"{v:.2f}" for v in row["relion_euler_degrees"]),
            ", ".join(f"{v:.2f}" for v in row["translation_angstrom"]), f"{row['score']:.4g}",
            f"{row['z_score']:.2f}", f"{row['normalized_z_score']:.2f}",
            "" if cc is None else f"{cc:.4f}",
        )  # fmt: skip
    Console().print(table)
    if "hand" in result:
        print(f"hand: {result['hand']} (mirrored normalised Z "
              f"{result['mirrored_normalized_z_score']:.2f})")  # fmt: skip


def search_maps(
    query: Annotated[Path, typer.Argument(help="Query map or model")],
    folder: Annotated[Path, typer.Argument(help="Folder of maps to search")],
    out: Annotated[Path | None, typer.Option(help="Write ranking.json here")] = None,
    angle_step: Annotated[float | None, typer.Option(help="Sample density (deg)")] = None,
    grid_spacing: Annotated[
        float, typer.Option(help="Spacing of the coarse search grid (A)")
    ] = 7.0,
    resolution: Annotated[float, typer.Option(help="Resolution for models (A)")] = 5.0,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """Fit the query into every map of a folder; rank them by the best fit's normalised Z
    (``--scheduler``: one Dask task per map)."""
    from rich.progress import Progress

    from cryomath.pipelines import dask_client, maps_in_folder
    from cryomath.pipelines import search_maps as search

    maps = maps_in_folder(folder)
    if out is not None:
        check_output_path(out / "ranking.json", force)
    with Progress(disable=json, transient=True) as bar, dask_client(scheduler) as client:
        task = bar.add_task("searching", total=len(maps))
        ranking = search(
            query, maps, angle_step, grid_spacing, resolution, device, client,
            progress=lambda k: bar.advance(task, k),
        )  # fmt: skip
    result = {"query": str(query), "convention": "x_ref = R x_query + T", "ranking": ranking}
    failed = all("error" in row for row in ranking)
    if out is not None and not failed:
        writable_directory(out)
        write_json(out / "ranking.json", result, force)
    if json:
        emit(result, True, title="ranking")
    else:
        _print_ranking(query, ranking)
    if failed:  # nothing to rank: the search failed, though each map's error was reported
        raise InvalidInputError(
            f"no map could be fitted ({len(ranking)} failed; first: {ranking[0]['error']})"
        )


def _print_ranking(query: Path, ranking: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"maps ranked for {query.name}")
    for column in ("rank", "map", "normalised Z", "correlation", "error"):
        table.add_column(column)
    for i, row in enumerate(ranking, 1):
        z = row.get("normalized_z_score")
        cc = row.get("correlation")
        table.add_row(str(i), Path(row["map"]).name, "" if z is None else f"{z:.2f}",
                      "" if cc is None else f"{cc:.3f}", row.get("error", ""))  # fmt: skip
    Console().print(table)
