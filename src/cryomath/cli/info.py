"""``cryomath info FILE``: what an MRC, STAR, .cs or cryoDRGN pickle file holds."""

from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from cryomath.cli.output import Json, emit
from cryomath.errors import InvalidInputError, MissingColumnsError
from cryomath.io import read_cryodrgn, read_cryosparc, read_mrc_header, read_relion_star, read_star
from cryomath.io.particles import ParticleTable

MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".ccp4", ".st", ".ali", ".rec")


def _unique(values: np.ndarray | None) -> list | None:
    return None if values is None else sorted(set(np.round(values, 6).tolist()))


def _particle_summary(table: ParticleTable) -> dict:
    return {
        "particles": table.n,
        "optics_groups": None if table.optics_group is None else len(set(table.optics_group)),
        "pixel_size_angstrom": _unique(table.pixel_size_angstrom),
        "image_size": _unique(table.image_size),
        "has_poses": table.rotations is not None,
        "has_origins": table.origins_angstrom is not None,
        "has_ctf": table.ctf is not None,
        "stacks": None if table.image_paths is None else len(pd.unique(table.image_paths)),
    }


def describe(path: Path) -> dict:
    """A JSON-ready description of the file at ``path``."""
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give a file")
    name = path.name.removesuffix(".gz").removesuffix(".bz2")
    if name.endswith(MRC_SUFFIXES):
        return {"file": str(path), "format": "mrc", **asdict(read_mrc_header(path))}
    if path.suffix == ".star":
        blocks = read_star(path)
        result = {
            "file": str(path),
            "format": "star",
            "blocks": {
                name or "(unnamed)": (
                    {"rows": len(b), "columns": list(b.columns)}
                    if isinstance(b, pd.DataFrame)
                    else {"pairs": list(b)}
                )
                for name, b in blocks.items()
            },
        }
        try:
            result.update(_particle_summary(read_relion_star(path, allow_unknown_columns=True)))
        except (MissingColumnsError, InvalidInputError):
            pass  # not a particle file: the block listing is the whole answer
        return result
    if path.suffix == ".cs":
        summary = _particle_summary(read_cryosparc(path))  # validates the file first
        fields = list(np.load(path, mmap_mode="r").dtype.names or [])
        return {"file": str(path), "format": "cryosparc", "fields": fields, **summary}
    if path.suffix == ".pkl":
        return {"file": str(path), "format": "cryodrgn", **_particle_summary(read_cryodrgn(path))}
    raise InvalidInputError(f"{path}: unknown file type (MRC, .star, .cs or .pkl expected)")


def info(
    file: Annotated[
        Path | None, typer.Argument(help="MRC/CCP4 map or stack, .star, .cs or cryoDRGN .pkl")
    ] = None,
    bundled: Annotated[
        bool, typer.Option("--bundled", help="Describe the map shipped with cryomath.")
    ] = False,
    json: Json = False,
) -> None:
    """Describe a file: shape, voxel size, origin and axis order; blocks, columns and counts."""
    if bundled:
        file = Path(str(resources.files("cryomath") / "data" / "emd_3197.map"))
    if file is None:
        raise InvalidInputError("give a FILE or --bundled")
    emit(describe(file), json, title=str(file))
