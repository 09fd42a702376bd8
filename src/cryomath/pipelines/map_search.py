"""Map fitting on files: maps (MRC) or atomic models (rendered at a resolution) read as
``(volume, voxel_size_angstrom, origin_angstrom)``, fits as plain rows, and the search of one
query against many maps (one map in memory at a time; one Dask task per map)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cryomath.devices import device_name
from cryomath.errors import CryomathError, InvalidInputError
from cryomath.fitting.align import MapFit, align_maps

MAP_SUFFIXES = (".mrc", ".map", ".mrcs", ".ccp4", ".mrc.gz", ".map.gz", ".mrc.bz2")


def read_fit_input(path: Path, voxel_size_angstrom: float | None, resolution_angstrom: float):
    """``(volume, voxel, origin)`` of a map, or of a model rendered at ``resolution_angstrom``
    (voxel: ``voxel_size_angstrom``, else a third of the resolution)."""
    from cryomath.atoms import map_from_model, read_atoms
    from cryomath.io import read_mrc
    from cryomath.io.models import is_model_path

    if is_model_path(path):
        voxel = voxel_size_angstrom or resolution_angstrom / 3
        volume, origin = map_from_model(read_atoms(path), voxel, resolution_angstrom)
        return volume, voxel, origin
    data, info = read_mrc(path, dtype=np.float64)
    voxel = info.cubic_voxel_size_angstrom()
    return torch.from_numpy(data), voxel, np.asarray(info.origin_angstrom)


def read_fit_pair(reference: Path, query: Path, resolution_angstrom: float):
    """Both inputs; a model takes the voxel size of the map it is fitted with."""
    from cryomath.io.models import is_model_path

    if is_model_path(reference) and not is_model_path(query):
        qry = read_fit_input(query, None, resolution_angstrom)
        return read_fit_input(reference, qry[1], resolution_angstrom), qry
    ref = read_fit_input(reference, None, resolution_angstrom)
    return ref, read_fit_input(query, ref[1], resolution_angstrom)


def fit_rows(models: list[MapFit]) -> list[dict]:
    """Fits from :func:`align_maps` as rows of plain numbers (for JSON and tables): the
    matrix, RELION Euler angles (degrees), axis-angle (radians), T (Angstrom) and the scores."""
    from cryomath.so3 import relion_euler_from_matrix, rotvec_from_matrix

    rows = []
    for m in models:
        r = m.rotation_matrix.cpu().double()
        rows.append({
            "rotation_matrix": r.numpy(),
            "relion_euler_degrees": relion_euler_from_matrix(r).numpy(),
            "axis_angle_radians": rotvec_from_matrix(r).numpy(),
            "translation_angstrom": m.translation_angstrom.cpu().double().numpy(),
            "score": m.score,
            "z_score": m.z_score,
            "normalized_z_score": m.normalized_z_score,
            **({"correlation": m.correlation} if m.correlation is not None else {}),
        })  # fmt: skip
    return rows


def _best_fit(path: Path, query: Path, resolution_angstrom: float, grid_spacing_angstrom: float,
              angle_step_degrees: float | None, device: str) -> dict:  # fmt: skip
    """The best fit of the query into one map, as a row (an error row if the map cannot be
    read or fitted: one bad map does not stop a search)."""
    try:
        ref, qry = read_fit_pair(path, query, resolution_angstrom)
        fits = align_maps(
            ref[0].to(device), *ref[1:], qry[0].to(device), *qry[1:],
            grid_spacing_angstrom=grid_spacing_angstrom, angle_step_degrees=angle_step_degrees,
            top=3,
        )  # fmt: skip
        return {"map": str(path), **fit_rows(fits)[0]}
    except CryomathError as exc:
        return {"map": str(path), "error": str(exc)}


def maps_in_folder(folder: str | Path) -> list[Path]:
    """The map files of ``folder`` (by suffix: ``MAP_SUFFIXES``), sorted; none is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    maps = sorted(p for p in folder.iterdir() if p.name.lower().endswith(MAP_SUFFIXES))
    if not maps:
        raise InvalidInputError(f"no maps ({', '.join(MAP_SUFFIXES)}) in {folder}")
    return maps


def search_maps(
    query: str | Path,
    maps: list[str | Path] | str | Path,
    angle_step_degrees: float | None = None,
    grid_spacing_angstrom: float = 7.0,
    resolution_angstrom: float = 5.0,
    device: str | torch.device | None = None,
    client=None,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Fit ``query`` (a map or model) into each of ``maps`` (paths, or a folder whose maps are
    taken) and rank them by the best fit's normalised Z, best first; a map that cannot be read
    is an error row at the end. ``client``: a ``dask.distributed.Client``, one task per map
    (retried if a worker dies; ``device`` is then the workers'); the ranking equals the
    single-process one."""
    if isinstance(maps, (str, Path)):
        maps = maps_in_folder(maps)
    options = {
        "query": Path(query), "resolution_angstrom": resolution_angstrom,
        "grid_spacing_angstrom": grid_spacing_angstrom, "angle_step_degrees": angle_step_degrees,
        "device": device_name(device, client),
    }  # fmt: skip
    ranking = []
    if client is None:
        for path in maps:
            ranking.append(_best_fit(Path(path), **options))
            if progress is not None:
                progress(1)
    else:
        from dask.distributed import as_completed

        futures = client.map(_best_fit, [Path(p) for p in maps], **options, retries=2, pure=False)
        for future in as_completed(futures):
            ranking.append(future.result())
            if progress is not None:
                progress(1)
    ranking.sort(key=lambda row: (-row.get("normalized_z_score", -np.inf), row["map"]))
    return ranking
