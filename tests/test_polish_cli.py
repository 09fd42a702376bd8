"""``cryomath polish`` on files: a movie of 25 particles simulated with known tracks
(``simulate.particle_movies``) whose STAR gives their poses, CTFs, origins and coordinates. The
tracks it writes follow the truth (rms of their shapes under 0.35 px, where global alignment
leaves 0.56 px), its polished particles, read back through the STAR it writes, match the clean
particles at their origins better than the globally aligned boxes do, and a STAR without
coordinates is refused in one line."""

import json

import numpy as np
import pandas as pd
import torch

from cryomath.atoms import map_from_model, read_atoms
from cryomath.cli import main
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier.crop import crop_or_pad
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import (
    CTFParameters,
    ParticleTable,
    read_particles,
    write_mrc,
    write_relion_movies_star,
    write_relion_star,
)
from cryomath.motion import aligned_sum, extract_boxes
from cryomath.projection import prepare_volume
from cryomath.simulate.movies import MovieSettings
from cryomath.simulate.particle_movies import simulate_particle_movie
from cryomath.so3.random import random_rotations


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean((-1, -2), keepdim=True), b - b.mean((-1, -2), keepdim=True)
    return float(((a * b).sum((-1, -2)) / (a.norm(dim=(-1, -2)) * b.norm(dim=(-1, -2)))).mean())


def test_polish_follows_the_true_tracks(tmp_path, capsys):
    pixel, box, size = 1.5, 64, 384
    volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), pixel, None, margin_angstrom=12.0)
    volume = crop_or_pad(volume, (box,) * 3)
    write_mrc(tmp_path / "map.mrc", volume.float().numpy(), pixel)
    centres = torch.arange(48, size - 47, 72)
    positions = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
    n = len(positions)
    g = torch.Generator().manual_seed(1)
    defocus = (10000 + 10000 * torch.rand(n, generator=g, dtype=torch.float64)).numpy()
    ctf = CTFParameters(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus,
                        defocus_angle_degrees=np.zeros(n), voltage_kv=np.full(n, 300.0),
                        spherical_aberration_mm=np.full(n, 2.7),
                        amplitude_contrast=np.full(n, 0.1), phase_shift_degrees=np.zeros(n),
                        bfactor_angstrom2=np.zeros(n), scale=np.ones(n))  # fmt: skip
    extra = pd.DataFrame({"rlnMicrographName": "MotionCorr/movie.mrc",
                          "rlnCoordinateX": positions[:, 0].double().numpy(),
                          "rlnCoordinateY": positions[:, 1].double().numpy()})  # fmt: skip
    rotations = random_rotations(n, generator=g, dtype=torch.float64).numpy()
    table = ParticleTable(n=n, rotations=rotations,
                          origins_angstrom=np.random.default_rng(1).uniform(-3, 3, (n, 2)),
                          ctf=ctf, pixel_size_angstrom=pixel, image_size=box, optics_group=1,
                          extra=extra)  # fmt: skip
    write_relion_star(table, tmp_path / "particles.star")
    batch = next(iter_batches(table, read_images=False, in_table_order=True))
    clean = predict_images(prepare_volume(volume, voxel_size_angstrom=pixel), batch)
    clean = clean / clean.std() * 0.1  # each particle where its origin puts it
    settings = MovieSettings(n_frames=16, dose_per_frame_e_per_a2=2.0, seed=4)
    movie = simulate_particle_movie(clean, positions, (size, size), pixel, settings, 2.0)
    write_mrc(tmp_path / "movie.mrc", movie.frames.float().numpy(), pixel)
    write_relion_movies_star(tmp_path / "movies.star", ["movie.mrc"], pixel)
    out = tmp_path / "polish"
    assert main(["polish", str(tmp_path / "particles.star"), "--movies",
                 str(tmp_path / "movies.star"), "--reference", str(tmp_path / "map.mrc"),
                 "--dose-per-frame", "2", "--out", str(out), "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["particles"] == n
    written = json.loads((out / "tracks.json").read_text())["movie.mrc"]
    drift = torch.tensor(written["drift_px"])
    found = torch.tensor(written["tracks_px"]) + drift
    truth = movie.tracks_px

    def shape_error(tracks):
        error = tracks - truth
        return float((error - error.mean(1, keepdim=True)).norm(dim=-1).pow(2).mean().sqrt())

    assert shape_error(drift.expand(n, -1, -1)) > 0.5  # what global alignment leaves: 0.56
    assert shape_error(found) < 0.35  # measured 0.21 px
    polished = torch.from_numpy(read_particles(out / "particles.star").read_images(np.arange(n)))
    boxes = -extract_boxes(movie.frames, positions, box, drift)
    exposures = movie.exposures_e_per_a2
    aligned = aligned_sum(boxes, torch.zeros(n, 16, 2, dtype=torch.float64), pixel, exposures)
    # measured 0.49 against 0.37
    assert _correlation(polished.double(), clean) > _correlation(aligned, clean) + 0.05
    assert (out / "tracks.png").stat().st_size > 0
    bare = tmp_path / "bare.star"
    write_relion_star(ParticleTable(n=n, rotations=table.rotations, ctf=ctf,
                                    pixel_size_angstrom=pixel, image_size=box), bare)  # fmt: skip
    assert main(["polish", str(bare), "--movies", str(tmp_path / "movies.star"), "--reference",
                 str(tmp_path / "map.mrc"), "--dose-per-frame", "2", "--out",
                 str(tmp_path / "x")]) == 1  # fmt: skip
    assert "coordinates" in capsys.readouterr().err
