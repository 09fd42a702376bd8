"""``cryomath motioncorr``: global motion correction of a movie; ``cryomath polish``:
per-particle motion with Bayesian polishing's prior, and the polished particles."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import Force, Json, emit

PreExposure = Annotated[float, typer.Option(help="Exposure before frame 1 (e/A^2)")]
AlignmentBfactor = Annotated[
    float, typer.Option(help="B-factor (px^2) of the low-pass the frames are aligned at")
]


def motioncorr(
    movie: Annotated[Path, typer.Argument(help="Movie: an MRC stack of frames")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("motioncorr"),
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size (A); default: the header's")
    ] = None,
    dose_per_frame: Annotated[
        float | None, typer.Option(help="Dose per frame (e/A^2): dose-weight the sum")
    ] = None,
    pre_exposure: PreExposure = 0.0,
    voltage: Annotated[float, typer.Option(help="kV (300, 200 or 100 for dose weighting)")] = 300.0,
    alignment_bfactor: AlignmentBfactor = 150.0,
    force: Force = False,
    json: Json = False,
) -> None:
    """Align a movie's frames (each against the sum of the others) and write the aligned sum
    (dose-weighted with --dose-per-frame: Grant & Grigorieff), drift.json and drift.png."""
    from cryomath.pipelines.motion import correct_movie

    summary = correct_movie(movie, out, pixel_size, dose_per_frame, pre_exposure, voltage,
                            alignment_bfactor, force)  # fmt: skip
    emit(summary, json, title="motion correction")


def polish(
    particles: Annotated[Path, typer.Argument(help="Particles STAR: poses, CTFs, coordinates")],
    movies: Annotated[Path, typer.Option(help="Movies STAR (rlnMicrographMovieName)")],
    reference: Annotated[Path, typer.Option(help="Reference map at the particles' pixel size")],
    dose_per_frame: Annotated[float, typer.Option(help="Dose per frame (e/A^2)")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("polish"),
    pre_exposure: PreExposure = 0.0,
    s_vel: Annotated[float, typer.Option(help="Velocity sigma (A per e/A^2), RELION's")] = 0.5,
    s_div: Annotated[float, typer.Option(help="Divergence sigma (A), RELION's")] = 5000.0,
    s_acc: Annotated[float, typer.Option(help="Acceleration sigma (A per e/A^2)")] = 2.0,
    alignment_bfactor: AlignmentBfactor = 150.0,
    invert: Annotated[
        bool, typer.Option(help="Invert the movies' contrast (raw movies: protein dark)")
    ] = True,
    force: Force = False,
    json: Json = False,
) -> None:
    """Align each movie, fit every particle's track against the reference with Bayesian
    polishing's prior (Zivanov et al. 2019; RELION's defaults) and write the dose-weighted
    particles summed along their tracks, particles.star, tracks.json and tracks.png."""
    from rich.progress import Progress

    from cryomath.io import read_particles
    from cryomath.motion import MotionPrior
    from cryomath.pipelines.polish import PolishSettings, polish_particles

    settings = PolishSettings(dose_per_frame, pre_exposure, MotionPrior(s_vel, s_div, s_acc),
                              alignment_bfactor, invert)  # fmt: skip
    table = read_particles(particles, allow_unknown_columns=True)
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("polishing", total=table.n)
        summary = polish_particles(table, movies, reference, out, settings, force,
                                   lambda k: bar.advance(task, k))  # fmt: skip
    emit(summary, json, title="polishing")
