"""Reading and writing particle tables by file extension: ``.star``, ``.cs``, ``.pkl``."""

import os
from pathlib import Path

from cryomath.errors import InvalidInputError
from cryomath.io.atomic import check_output_path
from cryomath.io.cryodrgn import read_cryodrgn, write_cryodrgn
from cryomath.io.cryosparc import read_cryosparc, write_cryosparc
from cryomath.io.particles import ParticleTable
from cryomath.io.relion import read_relion_star, write_relion_star

PARTICLE_SUFFIXES = (".star", ".cs", ".pkl")


def _suffix(path: Path) -> str:
    if path.suffix not in PARTICLE_SUFFIXES:
        raise InvalidInputError(
            f"{path}: unknown particle format (expected {', '.join(PARTICLE_SUFFIXES)})"
        )
    return path.suffix


def read_particles(
    path: str | os.PathLike,
    *,
    ctf_path: str | os.PathLike | None = None,
    image_size: int | None = None,
    pixel_size_angstrom: float | None = None,
    allow_unknown_columns: bool = False,
    project_dir: str | os.PathLike | None = None,
) -> ParticleTable:
    """Read a RELION ``.star``, cryoSPARC ``.cs`` or cryoDRGN pose ``.pkl`` (with ``ctf_path``).
    ``project_dir``: the folder relative image paths start from (RELION's and cryoSPARC's
    project directory; cryoDRGN's ``--datadir``); default: the file's own folder."""
    path = Path(path)
    suffix = _suffix(path)
    if project_dir is not None and not Path(project_dir).is_dir():
        raise InvalidInputError(f"project directory {project_dir} is not a folder")
    if suffix == ".star":
        table = read_relion_star(
            path,
            pixel_size_angstrom=pixel_size_angstrom,
            allow_unknown_columns=allow_unknown_columns,
        )
        if project_dir is not None:
            table.root = Path(project_dir)
        return table
    try:
        if suffix == ".cs":
            return read_cryosparc(path, root=project_dir)
        return read_cryodrgn(
            path, ctf_path, image_size=image_size, pixel_size_angstrom=pixel_size_angstrom
        )
    except InvalidInputError as exc:  # the table's own checks do not know the file
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None


def write_particles(
    table: ParticleTable,
    path: str | os.PathLike,
    *,
    ctf_path: str | os.PathLike | None = None,
    force: bool = False,
) -> None:
    """Write ``table`` in the format named by ``path``'s extension (``.pkl``: cryoDRGN poses,
    plus the CTF pickle at ``ctf_path``). Every output is checked before anything is written."""
    path = Path(path)
    suffix = _suffix(path)
    for out in (path, ctf_path):
        if out is not None:
            check_output_path(out, force)
    if suffix == ".star":
        write_relion_star(table, path, force=force)
    elif suffix == ".cs":
        write_cryosparc(table, path, force=force)
    else:
        write_cryodrgn(table, path, ctf_path, force=force)
    if ctf_path is not None and suffix != ".pkl":
        write_cryodrgn(table, None, ctf_path, force=force)
