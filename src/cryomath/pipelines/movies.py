"""Simulated movies of particles (``cryomath simulate --movie-size``): the ground truth of a
particle dataset (``simulate.ground_truth``: poses, origins, CTFs, halves) laid out on a grid
over movies of ``micrograph_size_px`` squared, each movie made by
``simulate.particle_movies`` (a seeded global drift and local motion, damage, Poisson counts,
optionally a counting detector's MTF and DQE).

The particles' images are the forward model's (``imaging.predict_images``) scaled to an rms
contrast of ``contrast_rms``; the counts carry the noise (the dataset's SNR or dose setting is
not used). Writes ``movie_NNN.mrc`` (frames, float32 counts), ``movies.star`` (what
``relion_run_motioncorr`` reads), ``particles.star`` (the truth with ``rlnMicrographName`` and
``rlnCoordinateX/Y``; no images: extract or polish them from the movies), ``tracks.json`` (per
movie: the drift and every particle's track, pixels, ``simulate.particle_movies``'s sign) and,
with a detector, ``mtf.star`` (RELION's MTF table: ``rlnResolutionInversePixel``,
``rlnMtfValue``).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryomath.errors import InvalidInputError
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import write_mrc, write_relion_movies_star, write_relion_star, write_star
from cryomath.io.atomic import check_output_path, output_set
from cryomath.io.results import write_json
from cryomath.noise import pixel_mtf
from cryomath.projection import prepare_volume
from cryomath.simulate import SimulationSettings, ground_truth
from cryomath.simulate.movies import MovieSettings
from cryomath.simulate.particle_movies import simulate_particle_movie


@dataclass
class MovieDatasetSettings:
    """The movies' size, exposure, motion and detector (units in the names)."""

    micrograph_size_px: int
    n_frames: int = 24
    dose_per_frame_e_per_a2: float = 1.5
    initial_speed_px_per_frame: float = 1.0
    local_rms_px: float = 1.0
    dqe: float | None = None  # DQE(0) of a counter with the pixel aperture's MTF; None: ideal


def grid_positions(micrograph_size_px: int, box: int) -> torch.Tensor:
    """``(P, 2)`` particle centres (x, y) on a square grid, boxes an eighth of a box apart and
    an eighth of a box from the edges (room to move)."""
    gap = max(box // 8, 2)
    per_side = (micrograph_size_px - gap) // (box + gap)
    if per_side < 1:
        raise InvalidInputError(f"a {micrograph_size_px}-pixel movie holds no {box}-pixel box")
    centres = gap + box // 2 + (box + gap) * torch.arange(per_side)
    return torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)


def simulate_movies(volume: torch.Tensor, out: Path, settings: SimulationSettings,
                    movie: MovieDatasetSettings, force: bool = False,
                    progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Movies of ``settings.n_particles`` particles of ``volume (n, n, n)`` (module
    docstring); returns a summary."""
    settings.check()
    if movie.n_frames < 2 or not movie.dose_per_frame_e_per_a2 > 0 or movie.local_rms_px < 0:
        raise InvalidInputError("movies need 2 frames or more, a positive dose per frame and "
                                "a non-negative local motion")  # fmt: skip
    if movie.dqe is not None and not 0 < movie.dqe <= 1:
        raise InvalidInputError(f"the DQE must be in (0, 1], got {movie.dqe}")
    box, pixel = volume.shape[-1], settings.pixel_size_angstrom
    positions = grid_positions(movie.micrograph_size_px, box)
    per_movie = len(positions)
    n_movies = math.ceil(settings.n_particles / per_movie)
    names = [f"movie_{i:03d}.mrc" for i in range(n_movies)]
    outputs = [*names, "movies.star", "particles.star", "tracks.json"]
    outputs += ["mtf.star"] if movie.dqe is not None else []
    for name in outputs:
        check_output_path(out / name, force)  # refused before any work, not after it
    size = (movie.micrograph_size_px,) * 2
    truth = ground_truth(settings, box)
    spectrum = prepare_volume(volume.double(), settings.pad_factor, voxel_size_angstrom=pixel)
    mtf = None if movie.dqe is None else pixel_mtf(size)
    dqe = None if movie.dqe is None else movie.dqe * mtf**2
    tracks, coordinates = {}, np.zeros((truth.n, 2))
    with output_set():
        for i, name in enumerate(names):
            rows = np.arange(i * per_movie, min((i + 1) * per_movie, truth.n))
            batch = next(iter_batches(truth, batch_size=len(rows), rows=rows, read_images=False,
                                      use_ctf=settings.ctf, in_table_order=True))  # fmt: skip
            clean = predict_images(spectrum, batch)
            rms = clean.flatten(-2).std(-1)[:, None, None].clamp(min=1e-30)
            frames = MovieSettings(movie.n_frames, movie.dose_per_frame_e_per_a2, 0.0,
                                   settings.voltage_kv, movie.initial_speed_px_per_frame,
                                   settings.seed * 100_003 + i)  # fmt: skip
            made = simulate_particle_movie(clean / rms * settings.contrast_rms,
                                           positions[: len(rows)], size, pixel, frames,
                                           movie.local_rms_px, mtf, dqe)  # fmt: skip
            write_mrc(out / name, made.frames.float().numpy(), pixel, force=force)
            coordinates[rows] = positions[: len(rows)].numpy()
            tracks[name] = {"drift_px": made.drift_px.tolist(),
                            "tracks_px": made.tracks_px.tolist()}  # fmt: skip
            if progress:
                progress(len(rows))
        truth.extra = pd.DataFrame({
            "rlnMicrographName": [names[r // per_movie] for r in range(truth.n)],
            "rlnCoordinateX": coordinates[:, 0], "rlnCoordinateY": coordinates[:, 1]})  # fmt: skip
        truth.image_paths = truth.image_indices = None
        write_relion_star(truth, out / "particles.star", force=force)
        write_relion_movies_star(out / "movies.star", names, pixel, settings.voltage_kv,
                                 settings.spherical_aberration_mm, settings.amplitude_contrast,
                                 force=force)  # fmt: skip
        write_json(out / "tracks.json", tracks, force)
        if mtf is not None:
            k = np.linspace(0, 0.5, 65)
            table = pd.DataFrame({"rlnResolutionInversePixel": k, "rlnMtfValue": np.sinc(k)})
            write_star(out / "mtf.star", {"": table}, force=force)  # RELION's MTF is radial
    return {
        "particles": truth.n,
        "movies": n_movies,
        "particles_per_movie": per_movie,
        "frames": movie.n_frames,
        "out": str(out),
    }
