"""``cryomath convert IN OUT``: particle metadata between RELION, cryoSPARC and cryoDRGN, and
optionally the images into one new stack that the output references."""

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import BatchSize, Force, Json, ProjectDir, emit
from cryomath.errors import InvalidInputError
from cryomath.io import read_particles, write_particles


def convert(
    source: Annotated[Path, typer.Argument(help="Input .star, .cs or cryoDRGN pose .pkl")],
    target: Annotated[
        Path, typer.Argument(help="Output .star (RELION 3.1), .cs, or cryoDRGN pose .pkl")
    ],
    force: Force = False,
    in_ctf: Annotated[
        Path | None, typer.Option(help="cryoDRGN CTF .pkl that goes with an input pose .pkl")
    ] = None,
    out_ctf: Annotated[
        Path | None, typer.Option(help="Also write a cryoDRGN CTF .pkl here")
    ] = None,
    box_size: Annotated[
        int | None, typer.Option(help="Box size in pixels (for cryoDRGN inputs)")
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size in Angstrom, overriding the input's")
    ] = None,
    allow_unknown_columns: Annotated[
        bool, typer.Option(help="Carry non-RELION STAR columns through")
    ] = False,
    stack: Annotated[
        Path | None,
        typer.Option(help="Also copy the images into this one .mrcs, which OUT then references"),
    ] = None,
    batch_size: BatchSize = 256,
    project_dir: ProjectDir = None,
    json: Json = False,
) -> None:
    """Convert particle metadata; poses, origins and CTF are converted exactly. ``--stack``
    gathers the images (from any number of stacks) into one new stack, in batches of
    ``--batch-size`` read from memory-mapped files."""
    from cryomath.io.atomic import check_output_path

    for path in (target, out_ctf, stack):
        if path is not None:
            check_output_path(path, force)
    table = read_particles(
        source,
        ctf_path=in_ctf,
        image_size=box_size,
        pixel_size_angstrom=pixel_size,
        allow_unknown_columns=allow_unknown_columns,
        project_dir=project_dir,
    )
    if stack is not None:
        _copy_images(table, stack, target.parent, batch_size, force, json)
    write_particles(table, target, ctf_path=out_ctf, force=force)
    outputs = [str(target)] + ([str(out_ctf)] if out_ctf else []) + ([str(stack)] if stack else [])
    emit(
        {
            "input": str(source),
            "outputs": outputs,
            "particles": table.n,
            "poses": table.rotations is not None,
            "ctf": table.ctf is not None,
        },
        json,
        title="converted",
    )


def _copy_images(table, stack: Path, root: Path, batch_size: int, force: bool, quiet: bool):
    """Write the table's images to ``stack`` in order and point the table at it (paths relative
    to ``root``, the output's folder)."""
    from rich.progress import Progress

    from cryomath.io import MRCStackWriter

    if batch_size < 1:
        raise InvalidInputError("--batch-size must be at least 1")
    table.require("image_paths", "image_indices", purpose="--stack")
    if table.pixel_size_angstrom is None:
        raise InvalidInputError("--stack needs the pixel size; pass --pixel-size")
    shape = table.read_images([0]).shape[1:]
    pixel = float(table.pixel_size_angstrom[0])
    with (
        MRCStackWriter(stack, table.n, shape, pixel, force=force) as writer,
        Progress(disable=quiet, transient=True) as bar,
    ):
        task = bar.add_task("copying images", total=table.n)
        for start in range(0, table.n, batch_size):
            writer.write(table.read_images(np.arange(start, min(start + batch_size, table.n))))
            bar.advance(task, min(batch_size, table.n - start))
    table.image_paths = np.full(table.n, os.path.relpath(stack, root), dtype=object)
    table.image_indices = np.arange(table.n)
    table.root = root
