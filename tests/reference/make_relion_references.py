"""Regenerate the RELION outputs beside this script from RELION itself (Debian package `relion`
3.1.3): ``relion_symmetry_ops.json`` (the symmetry operators ``relion_refine`` prints, 5-8
significant digits) and ``relion_expand_{D2,I1}.star`` (``relion_particle_symmetry_expand`` of
``relion_expand_input.star``).

Run: python tests/reference/make_relion_references.py  (needs RELION on PATH).
"""

import json
import re
import subprocess
import tempfile
from pathlib import Path

GROUPS = ["C1", "C2", "C5", "D2", "D3", "D7", "T", "O", "I1", "I2", "I3", "I4"]


def relion_ops(group: str) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["relion_refine", "--sym", group, "--print_symmetry_ops", "--o", f"{tmp}/x"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    lines = out.splitlines()
    ops = []
    for i, line in enumerate(lines):
        if re.match(r"\s*R\(\d+\)=", line):
            ops.append([[float(v) for v in lines[i + k].split()] for k in (1, 2, 3)])
    return ops


if __name__ == "__main__":
    table = {"source": "relion_refine --sym G --print_symmetry_ops (RELION 3.1.3, Debian)"}
    table["groups"] = {g: relion_ops(g) for g in GROUPS}
    here = Path(__file__).parent
    (here / "relion_symmetry_ops.json").write_text(json.dumps(table, indent=1) + "\n")
    for group in ("D2", "I1"):
        subprocess.run(
            [
                "relion_particle_symmetry_expand",
                "--i",
                str(here / "relion_expand_input.star"),
                "--o",
                str(here / f"relion_expand_{group}.star"),
                "--sym",
                group,
            ],
            check=True,
            capture_output=True,
        )
