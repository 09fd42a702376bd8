"""Focused 3-D classification (RELION's ``relion_refine --K --skip_align --solvent_mask``):
``cryomath class3d --skip-align`` keeps every particle's pose and offset and finds its class
only, and ``--solvent-mask`` decides which part of the references the classes see."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.cli import main
from cryomath.io import read_particles, write_mrc, write_relion_star
from cryomath.resolution import auto_mask
from tests.conformations import two_conformations

N, COUNT, VOXEL = 32, 300, 3.0


@pytest.fixture(scope="module")
def two_conformations_posed(tmp_path_factory):
    """300 particles (box 32, 3 A, CTF, SNR 0.2) of the 6VYB N-domain, whole or with the part
    at x >= 18 px removed (the truth per particle; ``tests.conformations``), at Haar-random
    poses and offsets of 1.5 px sd, written with those poses and offsets; the whole map; masks
    on the removed part and on the rest."""
    folder = tmp_path_factory.mktemp("focused")
    table, truth, full, cut, poses, shifts = two_conformations(folder, COUNT, N, VOXEL, 3, 0.2,
                                                               1.5)  # fmt: skip
    voxel = float(table.pixel_size_angstrom[0])
    table = replace(table, rotations=poses.numpy(), origins_angstrom=-shifts.numpy() * voxel)
    write_relion_star(table, folder / "particles.star")
    write_mrc(folder / "full.mrc", full.numpy(), voxel)
    removed = full - cut
    focus = auto_mask(removed, 0.1 * float(removed.max()), 2.0, 3.0)
    write_mrc(folder / "focus.mrc", focus.numpy(), voxel)
    rest = auto_mask(cut, 0.1 * float(cut.max()), 0.0, 3.0) * (1 - focus)
    write_mrc(folder / "rest.mrc", rest.numpy(), voxel)
    return folder, table, truth


def _classify(folder: Path, mask: str, out: Path, capsys) -> np.ndarray:
    """``class3d --skip-align`` from the whole map (K = 2, copies, RELION's random first
    classes) under ``mask``; each particle's class (0 or 1)."""
    assert main(["class3d", str(folder / "particles.star"), "--reference",
                 str(folder / "full.mrc"), "--classes", "2", "--iterations", "8",
                 "--skip-align", "--solvent-mask", str(folder / mask), "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert sum(summary["class_counts"]) == COUNT
    found = read_particles(out / "particles.star", allow_unknown_columns=True)
    return found, found.extra["rlnClassNumber"].to_numpy() - 1


def test_focused_classification_keeps_poses_and_separates_the_masked_part(
    two_conformations_posed, tmp_path, capsys
):
    """Under a mask on the part that only one conformation has, at least 95 % of particles end
    in the class of their conformation (ground truth of the simulation; measured 96.7 %, 96.3 %
    after 12 iterations, 76 % after 4), and every pose and offset is the one given (to the STAR
    file's precision)."""
    folder, table, truth = two_conformations_posed
    found, classes = _classify(folder, "focus.mrc", tmp_path / "focus", capsys)
    accuracy = max((classes == truth).mean(), (classes != truth).mean())
    assert accuracy >= 0.95
    turn = so3.geodesic_distance(torch.as_tensor(found.rotations), torch.as_tensor(table.rotations))
    assert float(torch.rad2deg(turn).max()) < 1e-3
    assert np.abs(found.origins_angstrom - table.origins_angstrom).max() < 1e-3


def test_a_mask_on_what_the_conformations_share_cannot_tell_them_apart(
    two_conformations_posed, tmp_path, capsys
):
    """Under a mask on the part both conformations share (the focus mask's complement), the
    classes are no better than chance (measured 51 %, one class holding 291 of 300; the focus
    mask: 96.7 %): the references are compared only where the mask lets them be."""
    folder, _, truth = two_conformations_posed
    _, classes = _classify(folder, "rest.mrc", tmp_path / "rest", capsys)
    assert max((classes == truth).mean(), (classes != truth).mean()) <= 0.75


def test_skip_align_refuses_local_searches_and_particles_without_poses(
    two_conformations_posed, tmp_path, capsys
):
    """``--skip-align --local`` (keep the poses, and search them) and ``--skip-align`` on
    particles without poses are refused in one line each, and write nothing."""
    folder, table, _ = two_conformations_posed
    common = ["--reference", str(folder / "full.mrc"), "--classes", "2", "--skip-align"]
    out = tmp_path / "both"
    assert main(["class3d", str(folder / "particles.star"), *common, "--local",
                 "--out", str(out)]) == 1  # fmt: skip
    assert "not both" in capsys.readouterr().err and not out.exists()
    write_relion_star(replace(table, rotations=None), folder / "bare.star", force=True)
    assert main(["class3d", str(folder / "bare.star"), *common, "--out",
                 str(tmp_path / "bare")]) == 1  # fmt: skip
    assert "needs rotations" in capsys.readouterr().err


def test_a_search_without_alignment_is_one_pose_and_one_offset():
    """A local search reaches the integer lattice points within two steps (analytic count:
    1 + 6 + 12 + 8 + 6 = 33); without alignment, the previous pose alone, and a sampling
    without alignment that would search offsets or globally is refused."""
    from cryomath.errors import InvalidInputError
    from cryomath.inference.sampling import Sampling, local_steps

    assert len(local_steps()) == 33 and local_steps(0.0).tolist() == [[0.0, 0.0, 0.0]]
    assert Sampling(3, True, 0.0, 1.0, 10, align=False).local_radius_steps == 0.0
    for local, offsets in ((False, 0.0), (True, 2.0)):
        with pytest.raises(InvalidInputError, match="without alignment"):
            Sampling(3, local, offsets, 1.0, 10, align=False).check()
