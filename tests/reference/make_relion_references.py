"""Regenerate the RELION outputs beside this script from RELION itself (Debian package `relion`
3.1.3): ``relion_symmetry_ops.json`` (the symmetry operators ``relion_refine`` prints, 5-8
significant digits), ``relion_expand_{D2,I1}.star`` (``relion_particle_symmetry_expand`` of
``relion_expand_input.star``) and ``dose_weighting/`` (``relion_run_motioncorr --use_own
--dose_weighting`` of :func:`dose_weighting_movie`: its aligned, dose-weighted sum and its
shifts). ``ewald/`` comes from ``bench/ewald.py --write-reference``.

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


def dose_weighting_movie():
    """8 frames of 128^2: a 1/k texture (rms 0.3) plus independent noise (sd 0.3) plus 10, as
    float32 (what RELION reads); seeded, so the test makes the same frames."""
    import torch

    from cryomath.simulate.movies import texture

    g = torch.Generator().manual_seed(0)
    frames = texture(128, 0.3, seed=0)[None] + 0.3 * torch.randn(
        8, 128, 128, generator=g, dtype=torch.float64
    )
    return (frames + 10).float()


def relion_dose_weighting(folder: Path) -> None:
    """``relion_run_motioncorr --use_own`` (global, 4 e/A^2 per frame, 300 kV, 1 A) of the movie:
    ``movie_sum.mrc`` and ``movie.star`` (its shifts) into ``folder``."""
    import shutil
    import tempfile

    from cryomath.io import write_mrc, write_relion_movies_star

    with tempfile.TemporaryDirectory() as tmp:
        write_mrc(Path(tmp) / "movie.mrc", dose_weighting_movie().numpy(), 1.0)
        write_relion_movies_star(Path(tmp) / "movies.star", ["movie.mrc"], 1.0)
        subprocess.run(
            [
                "relion_run_motioncorr",
                "--i",
                "movies.star",
                "--o",
                "MC/",
                "--use_own",
                "--j",
                "1",
                "--patch_x",
                "1",
                "--patch_y",
                "1",
                "--dose_weighting",
                "--angpix",
                "1",
                "--voltage",
                "300",
                "--dose_per_frame",
                "4",
                "--bfactor",
                "150",
                "--skip_defect",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        folder.mkdir(exist_ok=True)
        shutil.copy(Path(tmp) / "MC" / "movie.mrc", folder / "movie_sum.mrc")
        shutil.copy(Path(tmp) / "MC" / "movie.star", folder / "movie.star")


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
    relion_dose_weighting(here / "dose_weighting")
