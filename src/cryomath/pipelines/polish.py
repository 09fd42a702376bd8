"""Bayesian polishing of particles from their movies (``cryomath polish``).

For each movie of a RELION movies STAR (``rlnMicrographMovieName``), the particles whose
``rlnMicrographName`` has the movie's stem: the movie's frames are aligned globally
(``motion.align_frames``), each particle's boxes are cut at ``rlnCoordinateX/Y`` (inverted:
movies record protein dark), its reference image is predicted from the map at its pose, origin
and CTF, its track is fitted with Bayesian polishing's prior (``motion.fit_local_tracks``) and
its boxes are summed along the track, dose-weighted (``motion.aligned_sum``), with its content
left where its origin puts it (the particles STAR keeps the origins) and the counts' mean
removed. Particles on none of the movies are left out (the summary counts them).

Writes ``<movie stem>_polished.mrcs`` per movie, ``particles.star`` pointing at them,
``tracks.json`` (per movie: the global drift, and each particle's track in the aligned frames,
relative to its box centre, pixels: its motion in the movie is the sum) and ``tracks.png`` (the
first movie's tracks, drift included, at their positions).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cryomath.ctf.damage import frame_exposures
from cryomath.errors import InvalidInputError
from cryomath.imaging import iter_batches, predict_images
from cryomath.io import read_mrc, read_star, write_mrc, write_relion_star
from cryomath.io.atomic import check_output_path, output_set
from cryomath.io.results import write_json
from cryomath.motion import MotionPrior, align_frames, aligned_sum, extract_boxes, fit_local_tracks
from cryomath.pipelines.motion import read_movie
from cryomath.plots import plot_tracks
from cryomath.projection import prepare_volume

COORDINATES = ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY")


@dataclass
class PolishSettings:
    """What ``cryomath polish`` needs besides its files (units in the names)."""

    dose_per_frame_e_per_a2: float
    pre_exposure_e_per_a2: float = 0.0
    prior: MotionPrior = field(default_factory=MotionPrior)
    alignment_bfactor_px2: float = 150.0
    invert: bool = True


def _movies(movies_star: Path) -> list[Path]:
    blocks = read_star(movies_star)
    block = next((b for b in blocks.values() if "rlnMicrographMovieName" in b.columns), None)
    if block is None:
        raise InvalidInputError(f"{movies_star} has no rlnMicrographMovieName column")
    return [movies_star.parent / name for name in block["rlnMicrographMovieName"]]


def _polish_movie(movie: Path, table, rows: np.ndarray, spectrum, settings: PolishSettings):
    """The polished images ``(P, b, b)``, the drift and the tracks of one movie's particles."""
    stack, movie_pixel = read_movie(movie, np.float32)  # read whole: float32 halves it
    batch = next(iter_batches(table, batch_size=len(rows), rows=rows, read_images=False,
                              in_table_order=True))  # fmt: skip
    pixel, box = batch.pixel_size_angstrom, batch.image_size
    if abs(movie_pixel - pixel) > 1e-3 * pixel:
        raise InvalidInputError(f"{movie} has {movie_pixel:g} A pixels, the particles "
                                f"{pixel:g} A: polish at the movie's pixel size")  # fmt: skip
    exposures = frame_exposures(len(stack), settings.dose_per_frame_e_per_a2,
                                settings.pre_exposure_e_per_a2)  # fmt: skip
    voltage = float(batch.ctf.voltage_kv.reshape(-1)[0])
    drift = align_frames(stack, settings.alignment_bfactor_px2)
    extra = table.extra.iloc[rows]
    positions = torch.tensor(extra[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(np.float64))
    # single precision throughout: the same tracks as double, 3x faster (measured)
    boxes = extract_boxes(stack, positions, box, drift)
    boxes = -boxes if settings.invert else boxes
    references = predict_images(spectrum, batch).float()  # each at its origin
    fit = fit_local_tracks(boxes, references, positions.float(), pixel, exposures.float(),
                           voltage, settings.prior)  # fmt: skip
    origin = torch.zeros_like(positions) if batch.shifts_px is None else batch.shifts_px
    moves = fit.tracks_px - origin[:, None].float()
    polished = aligned_sum(boxes, moves, pixel, exposures.float(), voltage)
    polished = polished - polished.mean((-1, -2), keepdim=True)
    return polished, drift, fit.tracks_px, positions


def polish_particles(table, movies_star: Path, reference: Path, out: Path,
                     settings: PolishSettings, force: bool = False,
                     progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Polish the particles of ``table`` (read from a STAR with coordinates, poses and CTFs)
    from the movies of ``movies_star`` against the map ``reference`` (module docstring)."""
    settings.prior.check()
    table.require("rotations", "ctf", "pixel_size_angstrom", "image_size", purpose="polishing")
    missing = [c for c in COORDINATES if c not in table.extra.columns]
    if missing:
        raise InvalidInputError(f"the particles have no {', '.join(missing)}: polishing needs "
                                "each particle's micrograph and coordinates")  # fmt: skip
    movies = _movies(movies_star)
    stems = np.array([Path(str(name)).stem for name in table.extra["rlnMicrographName"]])
    work = [(m, np.flatnonzero(stems == m.stem)) for m in movies]
    work = [(m, rows) for m, rows in work if len(rows)]
    if not work:
        raise InvalidInputError(f"no particle is on a movie of {movies_star}")
    names = [f"{m.stem}_polished.mrcs" for m, _ in work]
    for name in [*names, "particles.star", "tracks.json", "tracks.png"]:
        check_output_path(out / name, force)  # refused before any work, not after it
    volume, info = read_mrc(reference, np.float64)
    spectrum = prepare_volume(torch.from_numpy(volume),
                              voxel_size_angstrom=float(info.voxel_size_angstrom[0]))  # fmt: skip
    paths = np.array(table.image_paths if table.image_paths is not None else [""] * table.n,
                     dtype=object)  # fmt: skip
    indices = np.zeros(table.n, np.int64)
    tracks, done = {}, 0
    with output_set():
        for (movie, rows), name in zip(work, names, strict=True):
            polished, drift, found, positions = _polish_movie(movie, table, rows, spectrum,
                                                              settings)  # fmt: skip
            write_mrc(out / name, polished.float().numpy(), table.pixel_size_angstrom[rows[0]],
                      force=force)  # fmt: skip
            paths[rows], indices[rows] = name, np.arange(len(rows))
            tracks[movie.name] = {"drift_px": drift.tolist(), "positions_px": positions.tolist(),
                                  "tracks_px": found.tolist()}  # fmt: skip
            done += len(rows)
            if progress:
                progress(len(rows))
        polished_rows = np.concatenate([rows for _, rows in work])
        table.image_paths, table.image_indices = paths, indices
        table.root = out
        write_relion_star(table.subset(np.sort(polished_rows)), out / "particles.star",
                          force=force)  # fmt: skip
        write_json(out / "tracks.json", tracks, force)
        first = next(iter(tracks.values()))
        whole = np.array(first["tracks_px"]) + np.array(first["drift_px"])  # the drift included
        plot_tracks(np.array(first["positions_px"]), whole, out / "tracks.png",
                    f"tracks on {next(iter(tracks))}", force)  # fmt: skip
    return {"particles": done, "movies": len(work), "particles_not_on_these_movies": table.n - done,
            "out": str(out)}  # fmt: skip
