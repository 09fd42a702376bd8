"""cryoDRGN pose and CTF pickles <-> :class:`ParticleTable`.

Conventions (docs/conventions.md, "cryoDRGN"): a pose pickle holds ``(R, t)`` (or ``R`` alone)
with ``R`` = RELION's A, ``(n, 3, 3)``, and ``t = origin_pixels / image_size`` ``(n, 2)``, the
RELION origin as a fraction of the box (same sign). A CTF pickle holds an ``(n, 9)`` array with
columns box size, pixel size (Angstrom), defocus U, V (Angstrom), astigmatism angle (degrees),
voltage (kV), Cs (mm), amplitude contrast, phase shift (degrees).

Pickles are read with an unpickler that admits numpy arrays only, so a hostile file cannot run
code.
"""

import io
import os
import pickle
from pathlib import Path

import numpy as np

from cryomath.errors import InvalidInputError, MissingColumnsError, PickleFormatError
from cryomath.io.atomic import atomic_output
from cryomath.io.particles import CTFParameters, ParticleTable

CTF_NAMES = (
    "defocus_u_angstrom",
    "defocus_v_angstrom",
    "defocus_angle_degrees",
    "voltage_kv",
    "spherical_aberration_mm",
    "amplitude_contrast",
    "phase_shift_degrees",
)


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy" and name in {
            "_reconstruct",
            "ndarray",
            "dtype",
            "scalar",
            "_frombuffer",
        }:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load(path: Path):
    if not path.exists():
        raise PickleFormatError(f"{path}: no such file")
    try:
        return _NumpyUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as exc:  # any unpickling failure means the file is not what it claims
        raise PickleFormatError(f"{path}: not a cryoDRGN pickle ({exc})") from None


def read_cryodrgn_ctf(path: str | os.PathLike) -> tuple[CTFParameters, np.ndarray, np.ndarray]:
    """Read a CTF pickle: ``(ctf, image_size (n,), pixel_size_angstrom (n,))``."""
    path = Path(path)
    array = _load(path)
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 9:
        raise PickleFormatError(f"{path}: a cryoDRGN CTF pickle holds an (n, 9) array")
    array = array.astype(np.float64)
    n = array.shape[0]
    ctf = CTFParameters(
        **{name: array[:, 2 + k] for k, name in enumerate(CTF_NAMES)},
        bfactor_angstrom2=np.zeros(n),
        scale=np.ones(n),
    )
    return ctf, array[:, 0].astype(np.int64), array[:, 1]


def read_cryodrgn(
    pose_path: str | os.PathLike,
    ctf_path: str | os.PathLike | None = None,
    *,
    image_size: int | None = None,
    pixel_size_angstrom: float | None = None,
) -> ParticleTable:
    """Read cryoDRGN poses (and CTF). Box and pixel size come from the CTF pickle or the
    arguments; they turn the fractional translations into Angstrom."""
    pose_path = Path(pose_path)
    poses = _load(pose_path)
    rotations, trans = poses if isinstance(poses, tuple) and len(poses) == 2 else (poses, None)
    if (
        not isinstance(rotations, np.ndarray)
        or rotations.ndim != 3
        or rotations.shape[1:] != (3, 3)
    ):
        raise PickleFormatError(
            f"{pose_path}: a cryoDRGN pose pickle holds (R (n,3,3), t (n,2)) or R"
        )
    n = rotations.shape[0]
    ctf = box = pixel = None
    if ctf_path is not None:
        ctf, box, pixel = read_cryodrgn_ctf(ctf_path)
        if len(ctf) != n:
            raise InvalidInputError(f"{ctf_path} has {len(ctf)} particles, {pose_path} has {n}")
    if image_size is not None:
        box = np.full(n, int(image_size))
    if pixel_size_angstrom is not None:
        pixel = np.full(n, float(pixel_size_angstrom))
    origins = None
    if trans is not None:
        trans = np.asarray(trans, dtype=np.float64)
        if trans.shape != (n, 2):
            raise PickleFormatError(
                f"{pose_path}: translations have shape {trans.shape}, expected {(n, 2)}"
            )
        if box is None or pixel is None:
            raise MissingColumnsError(
                f"{pose_path}: translations are fractions of the box: "
                "give a CTF pickle, or box and pixel size"
            )
        origins = trans * (box * pixel)[:, None]
    return ParticleTable(
        n=n,
        rotations=rotations.astype(np.float64),
        origins_angstrom=origins,
        ctf=ctf,
        pixel_size_angstrom=pixel,
        image_size=box,
        root=pose_path.parent,
    )


def _dump(obj, path: str | os.PathLike, force: bool) -> None:
    with atomic_output(path, force=force) as tmp, open(tmp, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)


def write_cryodrgn(
    table: ParticleTable,
    pose_path: str | os.PathLike | None,
    ctf_path: str | os.PathLike | None = None,
    *,
    force: bool = False,
) -> None:
    """Write cryoDRGN pickles: poses ``(R float32, t float64)`` and/or the ``(n, 9)`` CTF array."""
    if pose_path is not None:
        table.require(
            "rotations", "image_size", "pixel_size_angstrom", purpose="a cryoDRGN pose pickle"
        )
        origins = (
            table.origins_angstrom if table.origins_angstrom is not None else np.zeros((table.n, 2))
        )
        trans = origins / (table.image_size * table.pixel_size_angstrom)[:, None]
        _dump((table.rotations.astype(np.float32), trans), pose_path, force)
    if ctf_path is not None:
        table.require("ctf", "image_size", "pixel_size_angstrom", purpose="a cryoDRGN CTF pickle")
        columns = [
            table.image_size,
            table.pixel_size_angstrom,
            *(getattr(table.ctf, k) for k in CTF_NAMES),
        ]
        _dump(np.stack(columns, axis=1).astype(np.float32), ctf_path, force)
