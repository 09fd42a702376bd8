"""``cryomath motioncorr`` on a movie file simulated with a known drift (``simulate.movies``):
the drift it writes matches the truth (rms under a third of a pixel), the dose-weighted sum
and the figure are written, and a single image is refused in one line."""

import json

import numpy as np

from cryomath.cli import main
from cryomath.io import read_mrc, write_mrc
from cryomath.simulate.movies import MovieSettings, simulate_movie, texture


def test_motioncorr_finds_the_drift_of_a_movie_file(tmp_path, capsys):
    n = 256
    field = texture(n, 0.3)
    settings = MovieSettings(n_frames=16, dose_per_frame_e_per_a2=1.5,
                             initial_speed_px_per_frame=1.5, seed=3)  # fmt: skip
    movie = simulate_movie(field, 1.0, settings)
    write_mrc(tmp_path / "movie.mrcs", movie.frames.float().numpy(), 1.0)
    out = tmp_path / "mc"
    assert main(["motioncorr", str(tmp_path / "movie.mrcs"), "--dose-per-frame", "1.5",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 16 and summary["dose_weighted"]
    drift = np.array(json.loads((out / "drift.json").read_text())["drift_px"])
    truth = (movie.shifts_px - movie.shifts_px.mean(0)).numpy()
    assert np.sqrt(((drift - truth) ** 2).sum(1).mean()) < 0.33
    assert read_mrc(out / "sum.mrc")[0].shape[-2:] == (n, n)
    assert (out / "drift.png").stat().st_size > 0
    write_mrc(tmp_path / "one.mrc", field.float().numpy()[None], 1.0)
    assert main(["motioncorr", str(tmp_path / "one.mrc"), "--out", str(tmp_path / "x")]) == 1
    assert "at least 2 frames" in capsys.readouterr().err
