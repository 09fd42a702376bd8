"""cryoSPARC ``.cs`` particle files (numpy structured arrays) <-> :class:`ParticleTable`.

Conventions (docs/conventions.md, "cryoSPARC"): ``alignments3D/pose`` is the axis-angle vector
(radians) of A^T (:mod:`cryomath.so3.conventions.cryosparc`); ``alignments3D/shift`` is RELION's
origin in pixels of ``alignments3D/psize_A`` (same sign: the converters of pyem and cryoDRGN
copy it unchanged); ``alignments2D/pose`` is the in-plane angle in radians, RELION's psi with
rot = tilt = 0; ``ctf/df_angle_rad`` and ``ctf/phase_shift_rad`` are radians; ``blob/idx`` is
0-based; ``ctf/exp_group_id``, ``alignments*/split`` are 0-based where RELION counts from 1.
``blob/path`` is relative to the cryoSPARC project folder: images are looked up under ``root``
(the project directory; default: the folder of the ``.cs`` file). An exported ``.cs`` (the
"Export" action) prefixes its paths with ``>``: those lie next to the ``.cs`` file itself;
the prefix is dropped on reading (it is cryoSPARC-internal and no other program can open it).
"""

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from cryomath.errors import CryoSparcFormatError
from cryomath.io.atomic import atomic_output
from cryomath.io.particles import CTFParameters, ParticleTable

BLOB_FIELDS = ("blob/path", "blob/idx", "blob/shape", "blob/psize_A")
CTF_FIELDS = (
    "ctf/accel_kv",
    "ctf/cs_mm",
    "ctf/amp_contrast",
    "ctf/df1_A",
    "ctf/df2_A",
    "ctf/df_angle_rad",
)


def _load(path: Path) -> np.ndarray:
    if not path.exists():
        raise CryoSparcFormatError(f"{path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, EOFError) or any(s in str(exc) for s in ("could only read", "EOF")):
            raise CryoSparcFormatError(f"{path}: the file is truncated") from None
        raise CryoSparcFormatError(f"{path}: not a cryoSPARC .cs file ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise CryoSparcFormatError(f"{path}: not a cryoSPARC .cs file (no named fields)")
    if array.ndim != 1 or array.shape[0] == 0:
        raise CryoSparcFormatError(f"{path}: expected a non-empty table, got shape {array.shape}")
    return array


def _require(array: np.ndarray, names, path: Path, purpose: str) -> None:
    missing = [n for n in names if n not in array.dtype.names]
    if missing:
        raise CryoSparcFormatError(f"{path}: {purpose} needs fields {', '.join(missing)}")


def _field(array: np.ndarray, name: str, default=None) -> np.ndarray | None:
    if name in array.dtype.names:
        return np.asarray(array[name], dtype=np.float64)
    return None if default is None else np.full(array.shape[0], float(default))


def _rotations_and_origins(array: np.ndarray, pixel: np.ndarray, path: Path):
    import torch

    from cryomath.so3 import matrix_from_cryosparc_pose, matrix_from_relion_euler

    for prefix in ("alignments3D", "alignments2D"):
        if f"{prefix}/pose" not in array.dtype.names:
            continue
        _require(array, [f"{prefix}/shift"], path, "a pose")
        pose = torch.from_numpy(np.asarray(array[f"{prefix}/pose"], dtype=np.float64))
        if prefix == "alignments3D":
            rotations = matrix_from_cryosparc_pose(pose)
        else:
            angles = torch.zeros(pose.shape[0], 3, dtype=torch.float64)
            angles[:, 2] = torch.rad2deg(pose.reshape(-1))
            rotations = matrix_from_relion_euler(angles)
        shift_pixel = _field(array, f"{prefix}/psize_A")
        shift_pixel = pixel if shift_pixel is None else shift_pixel
        origins = np.asarray(array[f"{prefix}/shift"], dtype=np.float64) * shift_pixel[:, None]
        split = _field(array, f"{prefix}/split")
        return rotations.numpy(), origins, None if split is None else split.astype(np.int64) + 1
    return None, None, None


def read_cryosparc(
    path: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> ParticleTable:
    """Read a cryoSPARC particle ``.cs`` file (see module docstring for the conventions)."""
    path = Path(path)
    array = _load(path)
    _require(array, BLOB_FIELDS, path, "a particle file")
    pixel = np.asarray(array["blob/psize_A"], dtype=np.float64)
    ctf = None
    if any(name.startswith("ctf/") for name in array.dtype.names):
        _require(array, CTF_FIELDS, path, "the CTF")
        ctf = CTFParameters(
            defocus_u_angstrom=_field(array, "ctf/df1_A"),
            defocus_v_angstrom=_field(array, "ctf/df2_A"),
            defocus_angle_degrees=np.rad2deg(_field(array, "ctf/df_angle_rad")),
            voltage_kv=_field(array, "ctf/accel_kv"),
            spherical_aberration_mm=_field(array, "ctf/cs_mm"),
            amplitude_contrast=_field(array, "ctf/amp_contrast"),
            phase_shift_degrees=np.rad2deg(_field(array, "ctf/phase_shift_rad", 0.0)),
            bfactor_angstrom2=_field(array, "ctf/bfactor", 0.0),
            scale=_field(array, "ctf/scale", 1.0),
        )
    rotations, origins, split = _rotations_and_origins(array, pixel, path)
    group = (
        array["ctf/exp_group_id"].astype(np.int64) + 1
        if "ctf/exp_group_id" in array.dtype.names
        else None
    )
    extra = (
        pd.DataFrame({"ucsfUid": array["uid"].astype(np.uint64)})
        if "uid" in array.dtype.names
        else pd.DataFrame()
    )
    return ParticleTable(
        n=int(array.shape[0]),
        rotations=rotations,
        origins_angstrom=origins,
        ctf=ctf,
        pixel_size_angstrom=pixel,
        image_size=np.asarray(array["blob/shape"])[:, -1].astype(np.int64),
        image_paths=_image_paths(array, path, root),
        image_indices=np.asarray(array["blob/idx"], dtype=np.int64),
        optics_group=group,
        random_subset=split,
        extra=extra,
        root=path.parent if root is None else Path(root),
    )


def _image_paths(array: np.ndarray, path: Path, root) -> np.ndarray:
    """``blob/path`` relative to the table's root; ``>`` paths (exported jobs) are relative to
    the ``.cs`` file's folder, so under another ``root`` they are re-expressed against it."""
    paths = np.char.decode(np.asarray(array["blob/path"]), "utf-8").astype(object)
    exported = np.array([p.startswith(">") for p in paths], dtype=bool)
    if exported.any():
        paths[exported] = [
            p[1:] if root is None else os.path.relpath(path.parent / p[1:], root)
            for p in paths[exported]
        ]
    return paths


def cryosparc_array(table: ParticleTable) -> np.ndarray:
    """The structured array of a cryoSPARC ``.cs`` file holding ``table``."""
    table.require(
        "image_paths",
        "image_indices",
        "pixel_size_angstrom",
        "image_size",
        purpose="a cryoSPARC .cs file",
    )
    n = table.n
    paths = np.array([str(p).encode() for p in table.image_paths])
    fields = [
        ("uid", "<u8"),
        ("blob/path", paths.dtype.str),
        ("blob/idx", "<u4"),
        ("blob/shape", "<u4", (2,)),
        ("blob/psize_A", "<f4"),
        ("blob/sign", "<f4"),
    ]
    if table.ctf is not None:
        fields += [("ctf/type", "S9"), ("ctf/exp_group_id", "<u4")]
        fields += [
            (name, "<f4")
            for name in (
                *CTF_FIELDS,
                "ctf/phase_shift_rad",
                "ctf/scale",
                "ctf/scale_const",
                "ctf/bfactor",
            )
        ]
    if table.rotations is not None:
        fields += [
            ("alignments3D/split", "<u4"),
            ("alignments3D/shift", "<f4", (2,)),
            ("alignments3D/pose", "<f4", (3,)),
            ("alignments3D/psize_A", "<f4"),
        ]
    out = np.zeros(n, dtype=fields)
    if "ucsfUid" in table.extra.columns:
        out["uid"] = table.extra["ucsfUid"].to_numpy(np.uint64)
    else:
        # deterministic: the same table always gets the same uids (reproducible files)
        digest = hashlib.sha256("\n".join(map(str, paths)).encode())
        digest.update(np.asarray(table.image_indices, dtype=np.int64).tobytes())
        seed = int.from_bytes(digest.digest()[:8], "little")
        out["uid"] = np.random.default_rng(seed).integers(0, 2**63, size=n, dtype=np.uint64)
    out["blob/path"] = paths
    out["blob/idx"] = table.image_indices
    out["blob/shape"] = np.stack([table.image_size, table.image_size], axis=1)
    out["blob/psize_A"] = table.pixel_size_angstrom
    out["blob/sign"] = 1.0  # cryomath's images are protein-positive, like RELION's
    if table.ctf is not None:
        ctf = table.ctf
        out["ctf/type"] = b"imported"
        out["ctf/exp_group_id"] = 0 if table.optics_group is None else table.optics_group - 1
        out["ctf/accel_kv"] = ctf.voltage_kv
        out["ctf/cs_mm"] = ctf.spherical_aberration_mm
        out["ctf/amp_contrast"] = ctf.amplitude_contrast
        out["ctf/df1_A"] = ctf.defocus_u_angstrom
        out["ctf/df2_A"] = ctf.defocus_v_angstrom
        out["ctf/df_angle_rad"] = np.deg2rad(ctf.defocus_angle_degrees)
        out["ctf/phase_shift_rad"] = np.deg2rad(ctf.phase_shift_degrees)
        out["ctf/scale"] = ctf.scale
        out["ctf/scale_const"] = 0.0
        out["ctf/bfactor"] = ctf.bfactor_angstrom2
    if table.rotations is not None:
        import torch

        from cryomath.so3 import cryosparc_pose_from_matrix

        out["alignments3D/pose"] = cryosparc_pose_from_matrix(
            torch.from_numpy(table.rotations)
        ).numpy()
        origins = table.origins_angstrom if table.origins_angstrom is not None else np.zeros((n, 2))
        out["alignments3D/shift"] = origins / table.pixel_size_angstrom[:, None]
        out["alignments3D/psize_A"] = table.pixel_size_angstrom
        out["alignments3D/split"] = 0 if table.random_subset is None else table.random_subset - 1
    return out


def write_cryosparc(table: ParticleTable, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write ``table`` as a cryoSPARC ``.cs`` file, atomically. Values are stored as float32,
    as cryoSPARC does."""
    array = cryosparc_array(table)
    with atomic_output(path, force=force) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
