"""Elements of atoms whose file does not give them (PDB files from CHARMM, NAMD, GROMACS and
other MD programs often leave columns 77-78 blank).

Rule, as MD tools guess types from names: in a standard residue (amino acid, nucleotide,
water) an atom is H, C, N, O, S or P, given by the first letter of its name after any leading
digits (``HT1``, ``1HB`` -> H; ``CA`` -> C, never calcium), selenium for ``SE`` of MSE; in any
other residue the ion names of the PDB and CHARMM (``CA``, ``ZN``, ``SOD``, ``CLA``, ``POT``,
``CAL`` ...) give their element, ``CL``/``BR`` prefixes are halogens, then an organic first
letter, then a two-letter element. Nothing is ever guessed as mercury from ``HG1``: an
H-prefixed name in a standard residue is a hydrogen.
"""

import re

import gemmi

_ORGANIC = ("H", "C", "N", "O", "S", "P")
# CHARMM/AMBER ion residue names that are not element symbols
_ION_RESIDUES = {
    "SOD": "Na", "POT": "K", "CLA": "Cl", "CAL": "Ca", "CES": "Cs", "LIT": "Li", "RUB": "Rb",
    "ZN2": "Zn", "MG2": "Mg", "NA+": "Na", "CL-": "Cl", "K+": "K",
}  # fmt: skip


def _standard(residue_name: str) -> bool:
    info = gemmi.find_tabulated_residue(residue_name)
    return info is not None and (info.is_amino_acid() or info.is_nucleic_acid() or info.is_water())


def _is_element(symbol: str) -> bool:
    return gemmi.Element(symbol).atomic_number > 0


def infer_element(atom_name: str, residue_name: str) -> str:
    """The element symbol of an atom from its name and its residue's name (module docstring)."""
    name = re.sub(r"^[0-9]+", "", atom_name.strip().upper())
    residue = residue_name.strip().upper()
    if _standard(residue):
        if residue == "MSE" and name == "SE":
            return "Se"
        if name[:1] in _ORGANIC:
            return name[0]
    if residue in _ION_RESIDUES:
        return _ION_RESIDUES[residue]
    letters = re.sub(r"[^A-Z]", "", name)
    if residue == letters and _is_element(letters):  # an ion named as its element (CA, ZN, MG)
        return letters.capitalize()
    if letters[:2] in ("CL", "BR"):  # the halogens of ligands
        return letters[:2].capitalize()
    if letters[:1] in _ORGANIC:
        return letters[0]
    if len(letters) >= 2 and _is_element(letters[:2]):
        return letters[:2].capitalize()
    return letters[:1] if letters[:1] and _is_element(letters[:1]) else "X"


def pdb_lacks_elements(path) -> bool:
    """Whether a PDB file (plain or gzipped) has ATOM/HETATM records with blank element
    columns 77-78."""
    import gzip

    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        for line in f:
            if line.startswith(("ATOM  ", "HETATM")) and not line[76:78].strip():
                return True
    return False
