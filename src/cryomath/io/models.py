"""Writing atomic models (gemmi): a model moved by a rigid fit, and vector fields as
pseudo-atoms. Writes are atomic and never overwrite without ``force`` (``io.atomic``)."""

from pathlib import Path

import numpy as np

from cryomath.errors import FileFormatError
from cryomath.io.atomic import atomic_output

MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


def is_model_path(path: str | Path) -> bool:
    """Whether ``path`` names a PDB or mmCIF file (by its suffix)."""
    return str(path).lower().endswith(MODEL_SUFFIXES)


def _write(structure, path: Path, force: bool) -> None:
    with atomic_output(path, force) as tmp:
        if path.suffix.lower() in (".cif", ".mmcif"):
            structure.make_mmcif_document().write_file(str(tmp))
        else:
            structure.write_pdb(str(tmp))


def write_moved_model(
    source: str | Path,
    destination: str | Path,
    rotation: np.ndarray,
    translation_angstrom: np.ndarray,
    force: bool = False,
) -> None:
    """Write the model ``source`` with every atom moved to ``R x + T`` (Angstrom): the fit
    ``x_ref = R x_query + T`` applied to a model that overlays the query. The format follows
    ``destination``'s suffix (``.cif``/``.mmcif``: mmCIF; otherwise PDB)."""
    import gemmi

    try:
        structure = gemmi.read_structure(str(source))
    except (RuntimeError, ValueError) as exc:
        raise FileFormatError(f"{source}: not a readable PDB/mmCIF model ({exc})") from exc
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation_angstrom, dtype=np.float64)
    transform = gemmi.Transform(gemmi.Mat33(r.tolist()), gemmi.Vec3(*t.tolist()))
    for model in structure:
        model.transform_pos_and_adp(transform)
    _write(structure, Path(destination), force)


def write_vectors_pdb(
    destination: str | Path,
    positions_angstrom: np.ndarray,
    vectors: np.ndarray,
    length_angstrom: float,
    force: bool = False,
) -> None:
    """Write unit vectors at ``positions_angstrom (n, 3)`` as pseudo-atoms: residue ``VEC``
    ``i`` holds atom ``CA`` at the position and atom ``CB`` at its tip ``p + length * v``
    (draw CA-CB bonds to see arrows)."""
    import gemmi

    structure = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    tips = np.asarray(positions_angstrom) + length_angstrom * np.asarray(vectors)
    for i, (base, tip) in enumerate(zip(positions_angstrom, tips, strict=True), start=1):
        residue = gemmi.Residue()
        residue.name, residue.seqid = "VEC", gemmi.SeqId(i, " ")
        for name, point in (("CA", base), ("CB", tip)):
            atom = gemmi.Atom()
            atom.name, atom.element = name, gemmi.Element("C")
            atom.pos = gemmi.Position(*np.asarray(point, dtype=np.float64).tolist())
            atom.occ, atom.b_iso = 1.0, 0.0
            residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    _write(structure, Path(destination), force)
