"""RELION particle STAR files (3.0, 3.1, 4 and 5) <-> :class:`ParticleTable`.

Reading (docs/conventions.md, "RELION"):

* 3.1 and later hold a ``data_optics`` table merged onto ``data_particles`` by
  ``rlnOpticsGroup``; 3.0 holds one table with everything per particle.
* Pixel size: ``rlnImagePixelSize``, else ``rlnPixelSize``, else
  ``rlnDetectorPixelSize * 1e4 / rlnMagnification`` (micrometres and magnification).
* Origins: ``rlnOrigin{X,Y}Angst`` (3.1+, Angstrom); else ``rlnOrigin{X,Y}`` (3.0, pixels)
  times the pixel size. An image is the centred projection shifted by ``-origin``.
* Angles ``rlnAngleRot/Tilt/Psi`` in degrees give the pose A (psi alone: rot = tilt = 0).
* ``N@stack`` image names are 1-based and resolved relative to the STAR file's folder.

Columns not starting with ``rln`` are an error unless ``allow_unknown_columns=True``, and a
column that differs from a label cryomath interprets only by case is always an error (a typo
that RELION would silently ignore). Writing produces RELION 3.1 files.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryomath.errors import (
    InvalidInputError,
    MissingColumnsError,
    UnknownColumnError,
    check_positive,
)
from cryomath.io.particles import CTFParameters, ParticleTable
from cryomath.io.star import read_star, write_star

ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
# RELION label -> (CTFParameters field, default or None when required). The defaults are those
# of RELION's own CTF::read (ctf.cpp): missing Cs, Q0, B-factor, phase shift -> 0, scale -> 1.
CTF_COLUMNS = {
    "rlnDefocusU": ("defocus_u_angstrom", None),
    "rlnDefocusV": ("defocus_v_angstrom", "rlnDefocusU"),
    "rlnDefocusAngle": ("defocus_angle_degrees", 0.0),
    "rlnVoltage": ("voltage_kv", None),
    "rlnSphericalAberration": ("spherical_aberration_mm", 0.0),
    "rlnAmplitudeContrast": ("amplitude_contrast", 0.0),
    "rlnPhaseShift": ("phase_shift_degrees", 0.0),
    "rlnCtfBfactor": ("bfactor_angstrom2", 0.0),
    "rlnCtfScalefactor": ("scale", 1.0),
}
OPTICS_CTF = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
PIXEL_COLUMNS = ("rlnImagePixelSize", "rlnPixelSize", "rlnDetectorPixelSize", "rlnMagnification")
INTERPRETED = {
    *ANGLES,
    *CTF_COLUMNS,
    *PIXEL_COLUMNS,
    "rlnOriginX",
    "rlnOriginY",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnImageName",
    "rlnImageSize",
    "rlnOpticsGroup",
    "rlnRandomSubset",
}
KNOWN_PREFIXES = ("rln", "ucsf")  # ucsf*: pyem's passthrough columns


def _check_labels(columns, path: Path, allow_unknown: bool) -> None:
    lower = {label.lower(): label for label in INTERPRETED}
    for column in columns:
        if column not in INTERPRETED and column.lower() in lower:
            raise UnknownColumnError(
                f"{path}: column _{column} is not a RELION label; "
                f"did you mean _{lower[column.lower()]}?"
            )
    unknown = [c for c in columns if not c.startswith(KNOWN_PREFIXES)]
    if unknown and not allow_unknown:
        raise UnknownColumnError(
            f"{path}: unknown columns {', '.join('_' + c for c in unknown)} "
            "(pass allow_unknown_columns=True / --allow-unknown-columns to carry them through)"
        )


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _check_numeric(frame: pd.DataFrame, path: Path, block: str) -> None:
    """Every column cryomath reads as a number holds numbers: else name the column, the row
    and the value."""
    for label in INTERPRETED - {"rlnImageName"}:
        if label in frame.columns and frame[label].dtype.kind not in "iuf":
            try:
                frame[label].astype(np.float64)  # "nan" and "inf" are numbers (checked later)
                continue
            except ValueError:
                pass
            row = next(i for i, v in enumerate(frame[label]) if not _is_number(v))
            raise InvalidInputError(
                f"{path}: column _{label} of data_{block} holds text where numbers are expected "
                f"({frame[label].iloc[row]!r} in row {row + 1})"
            )


def _particle_block(blocks: dict, path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    optics = blocks.get("optics")
    if isinstance(optics, pd.DataFrame) and isinstance(blocks.get("particles"), pd.DataFrame):
        return blocks["particles"], optics
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and {"rlnImageName", "rlnAngleRot", "rlnDefocusU"} & set(
            block.columns
        ):
            return block, None
    raise MissingColumnsError(
        f"{path}: no particle table (a loop with rlnImageName, rlnAngleRot or rlnDefocusU)"
    )


def _merge_optics(particles: pd.DataFrame, optics: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "rlnOpticsGroup" not in particles.columns or "rlnOpticsGroup" not in optics.columns:
        raise MissingColumnsError(f"{path}: data_optics and data_particles need rlnOpticsGroup")
    if optics["rlnOpticsGroup"].duplicated().any():
        raise InvalidInputError(f"{path}: duplicate rlnOpticsGroup in data_optics")
    missing = set(particles["rlnOpticsGroup"]) - set(optics["rlnOpticsGroup"])
    if missing:
        raise InvalidInputError(
            f"{path}: particles refer to undefined optics groups {sorted(missing)}"
        )
    shared = [c for c in optics.columns if c in particles.columns and c != "rlnOpticsGroup"]
    per_optics = optics.drop(columns=shared)  # a per-particle value overrides its group's
    return particles.merge(per_optics, on="rlnOpticsGroup", how="left", sort=False)


def _pixel_size(frame: pd.DataFrame, override: float | None) -> np.ndarray | None:
    if override is not None:
        return np.full(len(frame), float(override))
    for label in ("rlnImagePixelSize", "rlnPixelSize"):
        if label in frame.columns:
            return frame[label].to_numpy(np.float64)
    if {"rlnDetectorPixelSize", "rlnMagnification"} <= set(frame.columns):
        return (
            frame["rlnDetectorPixelSize"].to_numpy(np.float64)
            * 1e4
            / frame["rlnMagnification"].to_numpy(np.float64)
        )
    return None


def _image_refs(names: pd.Series, path: Path) -> tuple[np.ndarray, np.ndarray]:
    split = names.astype(str).str.split("@", n=1, expand=True)
    if split.shape[1] == 1:  # no '@' anywhere: one image per file
        return split[0].to_numpy(object), np.zeros(len(names), dtype=np.int64)
    has_at = split[1].notna()
    paths = np.where(has_at, split[1], split[0]).astype(object)
    numbers = pd.to_numeric(split[0].where(has_at, "1"), errors="coerce")
    if numbers.isna().any() or (numbers < 1).any():
        row = int(np.flatnonzero(numbers.isna() | (numbers < 1))[0])
        raise InvalidInputError(
            f"{path}: bad rlnImageName {names.iloc[row]!r} (expected N@stack, N >= 1)"
        )
    return paths, numbers.to_numpy(np.int64) - 1


def _ctf(frame: pd.DataFrame, path: Path) -> CTFParameters | None:
    if "rlnDefocusU" not in frame.columns:
        return None
    missing = [
        label
        for label, (_, default) in CTF_COLUMNS.items()
        if default is None and label not in frame.columns
    ]
    if missing:
        raise MissingColumnsError(f"{path}: CTF needs {', '.join('_' + m for m in missing)}")
    values = {}
    for label, (name, default) in CTF_COLUMNS.items():
        if label in frame.columns:
            values[name] = frame[label].to_numpy(np.float64)
        elif isinstance(default, str):
            values[name] = frame[default].to_numpy(np.float64)
        else:
            values[name] = np.full(len(frame), default)
    return CTFParameters(**values)


def _rotations(frame: pd.DataFrame, path: Path) -> np.ndarray | None:
    present = [a for a in ANGLES if a in frame.columns]
    if not present:
        return None
    if present == ["rlnAnglePsi"]:
        angles = np.zeros((len(frame), 3))
        angles[:, 2] = frame["rlnAnglePsi"].to_numpy(np.float64)
    elif len(present) == 3:
        angles = frame[list(ANGLES)].to_numpy(np.float64)
    else:
        raise MissingColumnsError(
            f"{path}: angles need all of {', '.join('_' + a for a in ANGLES)}"
        )
    if not np.isfinite(angles).all():
        row = int(np.argwhere(~np.isfinite(angles))[0][0])
        raise InvalidInputError(f"{path}: NaN or inf Euler angle at particle {row}")
    import torch

    from cryomath.so3 import matrix_from_relion_euler

    return matrix_from_relion_euler(torch.from_numpy(angles)).numpy()


def _origins(frame: pd.DataFrame, pixel: np.ndarray | None, path: Path) -> np.ndarray | None:
    if {"rlnOriginXAngst", "rlnOriginYAngst"} <= set(frame.columns):
        return frame[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(np.float64)
    if {"rlnOriginX", "rlnOriginY"} <= set(frame.columns):
        if pixel is None:
            raise MissingColumnsError(f"{path}: origins in pixels (rlnOriginX) but no pixel size")
        return frame[["rlnOriginX", "rlnOriginY"]].to_numpy(np.float64) * pixel[:, None]
    return None


def read_relion_star(
    path: str | os.PathLike,
    *,
    pixel_size_angstrom: float | None = None,
    allow_unknown_columns: bool = False,
) -> ParticleTable:
    """Read a RELION particle STAR file; ``pixel_size_angstrom`` overrides the file's."""
    path = Path(path)
    blocks = read_star(path)
    particles, optics = _particle_block(blocks, path)
    if len(particles) == 0:
        raise InvalidInputError(f"{path}: the particle table is empty")
    _check_labels(particles.columns, path, allow_unknown_columns)
    _check_numeric(particles, path, "particles")
    if optics is not None:
        _check_labels(optics.columns, path, allow_unknown_columns)
        _check_numeric(optics, path, "optics")
    frame = particles if optics is None else _merge_optics(particles, optics, path)
    pixel = _pixel_size(frame, pixel_size_angstrom)
    bad = [] if pixel is None else pixel[~(np.isfinite(pixel) & (pixel > 0))]
    if len(bad):
        check_positive(bad[0], f"{path}: the pixel size", "A")
    paths = indices = None
    if "rlnImageName" in frame.columns:
        paths, indices = _image_refs(frame["rlnImageName"], path)
    optics_extra = pd.DataFrame()
    if optics is not None:
        keep = [c for c in optics.columns if c not in INTERPRETED or c == "rlnOpticsGroup"]
        optics_extra = optics[keep].set_index("rlnOpticsGroup")
    column = frame.get
    return ParticleTable(
        n=len(frame),
        rotations=_rotations(frame, path),
        origins_angstrom=_origins(frame, pixel, path),
        ctf=_ctf(frame, path),
        pixel_size_angstrom=pixel,
        image_size=None
        if column("rlnImageSize") is None
        else frame["rlnImageSize"].to_numpy(np.int64),
        image_paths=paths,
        image_indices=indices,
        optics_group=None
        if column("rlnOpticsGroup") is None
        else frame["rlnOpticsGroup"].to_numpy(np.int64),
        random_subset=None
        if column("rlnRandomSubset") is None
        else frame["rlnRandomSubset"].to_numpy(np.int64),
        extra=particles[[c for c in particles.columns if c not in INTERPRETED]].copy(),
        optics_extra=optics_extra,
        root=path.parent,
    )


def _optics_groups(table: ParticleTable) -> tuple[np.ndarray, pd.DataFrame]:
    """Group particles by their optics: keep the table's group ids where each id has one set of
    optics values, otherwise number the distinct sets 1, 2, ... in order of appearance."""
    table.require("pixel_size_angstrom", purpose="a RELION 3.1 optics table")
    columns = {"rlnImagePixelSize": table.pixel_size_angstrom}
    if table.image_size is not None:
        columns["rlnImageSize"] = table.image_size
    if table.ctf is not None:
        columns["rlnVoltage"] = table.ctf.voltage_kv
        columns["rlnSphericalAberration"] = table.ctf.spherical_aberration_mm
        columns["rlnAmplitudeContrast"] = table.ctf.amplitude_contrast
    values = pd.DataFrame(columns)
    distinct = values.drop_duplicates()
    if table.optics_group is not None:
        keyed = values.assign(rlnOpticsGroup=table.optics_group).drop_duplicates()
        if not keyed["rlnOpticsGroup"].duplicated().any():
            optics = keyed.sort_values("rlnOpticsGroup").reset_index(drop=True)
            return table.optics_group, optics
    codes = values.merge(
        distinct.assign(rlnOpticsGroup=np.arange(1, len(distinct) + 1)), how="left"
    )
    return codes["rlnOpticsGroup"].to_numpy(np.int64), distinct.assign(
        rlnOpticsGroup=np.arange(1, len(distinct) + 1)
    ).reset_index(drop=True)


def relion_blocks(table: ParticleTable) -> dict[str, pd.DataFrame]:
    """The ``optics`` and ``particles`` tables of a RELION 3.1 STAR file for ``table``."""
    groups, optics = _optics_groups(table)
    optics = optics.set_index("rlnOpticsGroup")
    if len(table.optics_extra.columns) and set(optics.index) <= set(table.optics_extra.index):
        optics = optics.join(table.optics_extra, how="left")
    else:
        optics["rlnOpticsGroupName"] = [f"opticsGroup{g}" for g in optics.index]
    if "rlnImageDimensionality" not in optics.columns:
        optics["rlnImageDimensionality"] = 2
    optics = optics.reset_index()
    particles = {}
    if table.image_paths is not None:
        particles["rlnImageName"] = [
            f"{i + 1:06d}@{p}" for i, p in zip(table.image_indices, table.image_paths, strict=True)
        ]
    particles["rlnOpticsGroup"] = groups
    if table.rotations is not None:
        import torch

        from cryomath.so3 import relion_euler_from_matrix

        angles = relion_euler_from_matrix(torch.from_numpy(table.rotations)).numpy()
        for k, label in enumerate(ANGLES):
            particles[label] = angles[:, k]
    if table.origins_angstrom is not None:
        particles["rlnOriginXAngst"] = table.origins_angstrom[:, 0]
        particles["rlnOriginYAngst"] = table.origins_angstrom[:, 1]
    if table.ctf is not None:
        for label, (name, _) in CTF_COLUMNS.items():
            if label not in OPTICS_CTF:
                particles[label] = getattr(table.ctf, name)
    if table.random_subset is not None:
        particles["rlnRandomSubset"] = table.random_subset
    frame = pd.DataFrame(particles)
    extra = table.extra.drop(columns=[c for c in table.extra.columns if c in frame.columns])
    return {"optics": optics, "particles": pd.concat([frame, extra], axis=1)}


def write_relion_star(
    table: ParticleTable, path: str | os.PathLike, *, force: bool = False
) -> None:
    """Write ``table`` as a RELION 3.1 particle STAR file (optics table + particles), atomically.

    Image paths are written as stored in the table (relative paths stay relative).
    """
    write_star(path, relion_blocks(table), force=force)


def write_relion_movies_star(
    path: str | os.PathLike,
    movie_names: list[str],
    pixel_size_angstrom: float,
    voltage_kv: float = 300.0,
    spherical_aberration_mm: float = 2.7,
    amplitude_contrast: float = 0.1,
    *,
    force: bool = False,
) -> None:
    """The movies STAR file ``relion_run_motioncorr --i`` reads: one optics group
    (``rlnMicrographOriginalPixelSize``, voltage, Cs, amplitude contrast) and the movies'
    names, atomically."""
    optics = pd.DataFrame({
        "rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
        "rlnMicrographOriginalPixelSize": [pixel_size_angstrom], "rlnVoltage": [voltage_kv],
        "rlnSphericalAberration": [spherical_aberration_mm],
        "rlnAmplitudeContrast": [amplitude_contrast],
    })  # fmt: skip
    movies = pd.DataFrame({"rlnMicrographMovieName": list(movie_names),
                           "rlnOpticsGroup": [1] * len(movie_names)})  # fmt: skip
    write_star(path, {"optics": optics, "movies": movies}, force=force)
