"""Atomic models read with gemmi (PDB, mmCIF): positions, elements, B-factors, occupancies."""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryomath.atoms.elements import infer_element, pdb_lacks_elements
from cryomath.errors import FileFormatError, InvalidInputError


@dataclass
class Atoms:
    """``positions_angstrom (n, 3)`` in ``(x, y, z)``, model coordinates (Angstrom);
    ``elements (n,)`` symbols; ``bfactors_angstrom2 (n,)``; ``occupancies (n,)``."""

    positions_angstrom: np.ndarray
    elements: np.ndarray
    bfactors_angstrom2: np.ndarray
    occupancies: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.positions_angstrom)
        self.positions_angstrom = np.asarray(self.positions_angstrom, dtype=np.float64).reshape(
            n, 3
        )
        for name in ("elements", "bfactors_angstrom2", "occupancies"):
            if len(getattr(self, name)) != n:
                raise InvalidInputError(
                    f"{name} has {len(getattr(self, name))} entries for {n} atoms"
                )
        if not np.isfinite(self.positions_angstrom).all():
            raise InvalidInputError("atom positions contain NaN or inf")


def read_atoms(path: str | Path, model_index: int = 0, waters: bool = False) -> Atoms:
    """Atoms of one model of a PDB or mmCIF file (hydrogens kept if present; waters dropped
    unless ``waters``). A PDB file without element columns (MD output) gets its elements from
    atom and residue names (``atoms.infer_element``), with one warning."""
    import gemmi

    if not Path(path).exists():  # gemmi's own errors do not name the file
        raise FileFormatError(f"{path}: no such file")
    if Path(path).is_dir():
        raise FileFormatError(f"{path}: is a folder, not a PDB/mmCIF model")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable PDB/mmCIF model ({exc})") from exc
    if len(structure) <= model_index:
        raise FileFormatError(f"{path}: no model {model_index}")
    guess = structure.input_format == gemmi.CoorFormat.Pdb and pdb_lacks_elements(path)
    if guess:
        warnings.warn(
            f"{path}: no element columns; elements inferred from atom and residue names",
            stacklevel=2,
        )
    positions, elements, bfactors, occupancies = [], [], [], []
    for chain in structure[model_index]:
        for residue in chain:
            if residue.is_water() and not waters:
                continue
            for atom in residue:
                positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
                elements.append(
                    infer_element(atom.name, residue.name) if guess else atom.element.name
                )
                bfactors.append(atom.b_iso)
                occupancies.append(atom.occ)
    if not positions:
        raise FileFormatError(f"{path}: no atoms")
    return Atoms(np.array(positions), np.array(elements), np.array(bfactors), np.array(occupancies))
