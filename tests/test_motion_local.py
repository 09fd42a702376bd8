"""Local motion (``motion.local``: Bayesian polishing's prior) on a movie of particles simulated
with known tracks (``simulate.particle_movies``: a global drift plus a smooth local motion of
2 px rms, damage, counting noise, a detector MTF and DQE): after global alignment each
particle's track is found to a fraction of a pixel, well below what global alignment leaves,
and the polished, dose-weighted boxes match the clean particles better than the globally
aligned ones."""

import torch

from cryomath.atoms import map_from_model, read_atoms
from cryomath.ctf import CTF
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier.crop import crop_or_pad
from cryomath.imaging import ParticleBatch, predict_images
from cryomath.motion import align_frames, aligned_sum, extract_boxes, fit_local_tracks
from cryomath.noise import pixel_mtf
from cryomath.projection import prepare_volume
from cryomath.simulate.movies import MovieSettings
from cryomath.simulate.particle_movies import simulate_particle_movie
from cryomath.so3.random import random_rotations


def _rms(a: torch.Tensor) -> float:
    return float(a.norm(dim=-1).pow(2).mean().sqrt())


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean((-1, -2), keepdim=True), b - b.mean((-1, -2), keepdim=True)
    return float(((a * b).sum((-1, -2)) / (a.norm(dim=(-1, -2)) * b.norm(dim=(-1, -2)))).mean())


def test_particle_tracks_are_found_by_bayesian_polishing():
    pixel, box, size = 1.5, 64, 384
    volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), pixel, None, margin_angstrom=12.0)
    spectrum = prepare_volume(crop_or_pad(volume, (box,) * 3), voxel_size_angstrom=pixel)
    centres = torch.arange(48, size - 47, 72)
    positions = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
    n = len(positions)
    g = torch.Generator().manual_seed(0)
    defocus = 10000 + 10000 * torch.rand(n, generator=g, dtype=torch.float64)
    ctf = CTF(defocus, defocus, 0.0, 300.0, 2.7, 0.1)
    rotations = random_rotations(n, generator=g, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(rotations=rotations, pixel_size_angstrom=pixel, ctf=ctf,
                                       image_size=box)  # fmt: skip
    clean = predict_images(spectrum, batch)
    clean = clean / clean.std() * 0.1
    mtf = pixel_mtf((size, size), torch.float64)
    settings = MovieSettings(n_frames=16, dose_per_frame_e_per_a2=2.0, seed=3)
    dqe = 0.8 * mtf**2
    movie = simulate_particle_movie(clean, positions, (size, size), pixel, settings, 2.0, mtf, dqe)
    drift = align_frames(movie.frames)
    boxes = -extract_boxes(movie.frames, positions, box, drift)  # inverted, as extraction does
    truth = movie.tracks_px - drift  # where each particle sits in its aligned boxes
    shape = truth - truth.mean(1, keepdim=True)
    assert _rms(shape) > 0.5  # global alignment leaves the local motion (measured 0.58 px)
    fit = fit_local_tracks(boxes, clean, positions, pixel, movie.exposures_e_per_a2)
    error = fit.tracks_px - truth
    assert _rms(error - error.mean(1, keepdim=True)) < 0.25  # measured 0.17 px
    assert _rms(error) < 0.3  # with each particle's own offset: measured 0.20 px
    polished = aligned_sum(boxes, fit.tracks_px, pixel, movie.exposures_e_per_a2)
    aligned = aligned_sum(boxes, torch.zeros_like(fit.tracks_px), pixel, movie.exposures_e_per_a2)
    assert _correlation(polished, clean) > _correlation(aligned, clean) + 0.02


def test_relions_polishing_reads_our_movies_and_tracks_as_we_do():
    """RELION 3.1.3's ``relion_motion_refine`` (``tests/reference/polishing``, made by
    ``make_relion_references.py``) of a movie from ``simulate.particle_movies``: its tracks
    (``*_tracks.star``, Angstrom) follow our true tracks in shape, with our sign and axes. So
    our movies' contrast (protein dark) is what RELION expects of a movie, and a track means
    the same in both: the content's position per frame, x then y."""
    from pathlib import Path

    import numpy as np

    from cryomath.io import read_star
    from tests.reference.make_relion_references import polishing_movie

    movie, *_ = polishing_movie()
    blocks = read_star(Path(__file__).parent / "reference" / "polishing" / "movie_tracks.star")
    columns = ["rlnOriginXAngst", "rlnOriginYAngst"]
    relion = torch.from_numpy(np.stack([blocks[str(p)][columns].to_numpy() for p in range(9)]))
    relion = relion / 1.5  # Angstrom to pixels

    def shape(tracks: torch.Tensor) -> torch.Tensor:
        return tracks - tracks.mean(1, keepdim=True)

    truth = shape(movie.tracks_px)
    assert _rms(truth) > 1.0  # it moved (1.19 px rms)
    assert _rms(shape(relion) - truth) < 0.4  # measured 0.27 px
    assert _rms(-shape(relion) - truth) > 2.0  # the opposite sign: 2.30 px
    assert _rms(shape(relion).flip(-1) - truth) > 0.8  # x and y swapped: 1.13 px
