"""``cryomath motioncorr``: global motion correction of a movie."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import Force, Json, emit


def motioncorr(
    movie: Annotated[Path, typer.Argument(help="Movie: an MRC stack of frames")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("motioncorr"),
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size (A); default: the header's")
    ] = None,
    dose_per_frame: Annotated[
        float | None, typer.Option(help="Dose per frame (e/A^2): dose-weight the sum")
    ] = None,
    pre_exposure: Annotated[float, typer.Option(help="Exposure before frame 1 (e/A^2)")] = 0.0,
    voltage: Annotated[float, typer.Option(help="kV (300, 200 or 100 for dose weighting)")] = 300.0,
    alignment_bfactor: Annotated[
        float, typer.Option(help="B-factor (px^2) of the low-pass the frames are aligned at")
    ] = 150.0,
    force: Force = False,
    json: Json = False,
) -> None:
    """Align a movie's frames (each against the sum of the others) and write the aligned sum
    (dose-weighted with --dose-per-frame: Grant & Grigorieff), drift.json and drift.png."""
    from cryomath.pipelines.motion import correct_movie

    summary = correct_movie(movie, out, pixel_size, dose_per_frame, pre_exposure, voltage,
                            alignment_bfactor, force)  # fmt: skip
    emit(summary, json, title="motion correction")
