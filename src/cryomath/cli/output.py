"""Printing results: JSON for scripts, rich tables for people; JSON result files."""

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cryomath.io.results import plain

# options shared by the commands
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
Scheduler = Annotated[str | None, typer.Option(help="Dask: local, local:N or a scheduler address")]
Device = Annotated[str, typer.Option(help="Where to compute: cpu, cuda, cuda:N or mps")]
BatchSize = Annotated[int, typer.Option(help="Images per batch (memory: one batch)")]
ParticleDiameter = Annotated[
    float | None, typer.Option(help="Particle diameter (A): the background is outside")
]
Symmetry = Annotated[
    str, typer.Option("--symmetry", "--sym", help="Point group, RELION's setting (C1, D7, O, I2)")
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="Insert into the maps through kernels compiled for this CPU (faster on long "
        "runs; compiling takes seconds at the start)",
    ),
]
ProjectDir = Annotated[
    Path | None,
    typer.Option(help="Folder the particle file's image paths start from (default: its own)"),
]


def emit(result: dict, as_json: bool, title: str) -> None:
    """Print ``result`` as JSON (``as_json``) or as a two-column table."""
    if as_json:
        print(json.dumps(plain(result), indent=2, allow_nan=False))
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in plain(result).items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


def scalars(result: dict) -> dict:
    """The entries of ``result`` that are not arrays (the part a table shows well)."""
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}
