"""``cryomath convert IN OUT``: particle metadata between RELION, cryoSPARC and cryoDRGN."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import Force, Json, emit
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
    json: Json = False,
) -> None:
    """Convert particle metadata; poses, origins and CTF are converted exactly."""
    table = read_particles(
        source,
        ctf_path=in_ctf,
        box_size=box_size,
        pixel_size_angstrom=pixel_size,
        allow_unknown_columns=allow_unknown_columns,
    )
    write_particles(table, target, ctf_path=out_ctf, force=force)
    outputs = [str(target)] + ([str(out_ctf)] if out_ctf else [])
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
