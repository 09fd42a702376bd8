"""``cryomath simulate --movie-size`` then ``cryomath polish``: movies of 50 particles with
origins, written with their true tracks, are polished against the map. The tracks polish writes
follow the truth (rms of their shapes under 0.28 px, where global alignment leaves 0.5 px or
more), its particles, read back through the STAR it writes, match the clean particles at their
origins better than the globally aligned boxes do, and a STAR without coordinates is refused in
one line."""

import json

import numpy as np
import torch

from cryomath.atoms import map_from_model, read_atoms
from cryomath.cli import main
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier.crop import crop_or_pad
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import ParticleTable, read_mrc, read_particles, write_mrc, write_relion_star
from cryomath.motion import aligned_sum, extract_boxes
from cryomath.projection import prepare_volume


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean((-1, -2), keepdim=True), b - b.mean((-1, -2), keepdim=True)
    return float(((a * b).sum((-1, -2)) / (a.norm(dim=(-1, -2)) * b.norm(dim=(-1, -2)))).mean())


def _shape_error(found: torch.Tensor, truth: torch.Tensor) -> float:
    error = found - truth
    return float((error - error.mean(1, keepdim=True)).norm(dim=-1).pow(2).mean().sqrt())


def test_simulated_movies_are_polished_along_their_true_tracks(tmp_path, capsys):
    pixel, box = 1.5, 64
    volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), pixel, None, margin_angstrom=12.0)
    volume = crop_or_pad(volume, (box,) * 3)
    write_mrc(tmp_path / "map.mrc", volume.float().numpy(), pixel)
    sim, out = tmp_path / "sim", tmp_path / "polish"
    assert main(["simulate", str(tmp_path / "map.mrc"), "--n", "50", "--movie-size", "384",
                 "--movie-frames", "16", "--dose-per-frame", "2", "--local-motion", "2",
                 "--shift-sigma", "3", "--dqe", "0.8", "--out", str(sim),
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["movies"] == 2
    assert main(["polish", str(sim / "particles.star"), "--movies", str(sim / "movies.star"),
                 "--reference", str(tmp_path / "map.mrc"), "--dose-per-frame", "2", "--out",
                 str(out), "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["particles"] == 50
    truth = json.loads((sim / "tracks.json").read_text())["movie_000.mrc"]
    written = json.loads((out / "tracks.json").read_text())["movie_000.mrc"]
    true_tracks = torch.tensor(truth["tracks_px"])
    n = len(true_tracks)
    drift = torch.tensor(written["drift_px"], dtype=torch.float64)
    found = torch.tensor(written["tracks_px"]) + drift
    assert _shape_error(drift.expand(n, -1, -1), true_tracks) > 0.5  # global alignment: 0.57
    assert _shape_error(found, true_tracks) < 0.28  # measured 0.19 px
    table = read_particles(out / "particles.star")
    rows = np.arange(n)  # the first movie's particles
    polished = torch.from_numpy(table.read_images(rows)).double()
    batch = next(iter_batches(table, rows=rows, read_images=False, in_table_order=True))
    clean = predict_images(prepare_volume(volume, voxel_size_angstrom=pixel), batch)
    positions = torch.tensor(written["positions_px"], dtype=torch.float64)
    frames = torch.from_numpy(read_mrc(sim / "movie_000.mrc", np.float64)[0])
    boxes = -extract_boxes(frames, positions, box, drift)
    exposures = 2.0 * torch.arange(1, 17, dtype=torch.float64)
    aligned = aligned_sum(boxes, torch.zeros(n, 16, 2, dtype=torch.float64), pixel, exposures)
    assert _correlation(polished, clean) > _correlation(aligned, clean) + 0.02  # 0.41, 0.38
    assert (out / "tracks.png").stat().st_size > 0
    bare = tmp_path / "bare.star"
    write_relion_star(ParticleTable(n=n, rotations=table.rotations[rows],
                                    ctf=table.ctf.subset(rows), pixel_size_angstrom=pixel,
                                    image_size=box), bare)  # fmt: skip
    assert main(["polish", str(bare), "--movies", str(sim / "movies.star"), "--reference",
                 str(tmp_path / "map.mrc"), "--dose-per-frame", "2", "--out",
                 str(tmp_path / "x")]) == 1  # fmt: skip
    assert "coordinates" in capsys.readouterr().err
