"""``cryomath rotations``: convert, grid, average and compare rotations from the shell.

Rotations come as numbers on the command line (``-- 30 60 120``, several triplets allowed), as
a text file of rows in a convention (whitespace or commas), or as a particle file (.star, .cs,
cryoDRGN .pkl) whose poses are read directly.
"""

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import Force, Json, Symmetry, emit
from cryomath.errors import InvalidInputError
from cryomath.io.atomic import atomic_output, check_output_path

app = typer.Typer(help="Rotations: conventions, grids, averages, distances.", no_args_is_help=True)

PARTICLE_SUFFIXES = (".star", ".cs", ".pkl")


def _parse_rows(values: list[float], convention):
    import torch

    n = len(convention.parameters)
    if not values or len(values) % n:
        raise InvalidInputError(
            f"{convention.name} takes {n} numbers per rotation "
            f"({', '.join(convention.parameters)}); got {len(values)}"
        )
    return torch.tensor(values, dtype=torch.float64).reshape(-1, n)


def _read_text(path: Path, convention):
    try:
        lines = path.read_text(encoding="utf-8-sig").replace(",", " ").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a text file ({exc})") from None
    n, rows = len(convention.parameters), []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = [float(v) for v in line.split()]
        except ValueError:
            raise InvalidInputError(f"{path}:{number}: not numbers: {line.strip()[:60]}") from None
        if len(row) != n:
            raise InvalidInputError(
                f"{path}:{number}: {len(row)} numbers, but {convention.name} takes {n} per "
                f"rotation ({', '.join(convention.parameters)})"
            )
        rows.append(row)
    return _parse_rows([v for row in rows for v in row], convention)


def load_rotations(source: str | Path, convention_name: str):
    """``(n, 3, 3)`` pose matrices from a particle file, a text file, or ``"a,b,c"``."""
    import torch

    from cryomath.so3 import check_rotation_matrices, get_convention, matrix_from_convention

    convention = get_convention(convention_name)
    path = Path(source)
    if path.suffix in PARTICLE_SUFFIXES:
        from cryomath.io import read_particles

        table = read_particles(path, allow_unknown_columns=True)
        table.require("rotations", purpose="reading rotations")
        return check_rotation_matrices(torch.as_tensor(table.rotations, dtype=torch.float64))
    if path.is_file():
        return matrix_from_convention(_read_text(path, convention), convention.name)
    try:
        values = [float(v) for v in str(source).replace(",", " ").split()]
    except ValueError as exc:
        raise InvalidInputError(f"{source} is neither a file nor numbers") from exc
    return matrix_from_convention(_parse_rows(values, convention), convention.name)


# commands whose positional values are numbers: "-120" or "-150,60,120" is a value, not an
# option (click hands an unknown option on as an argument; a typo'd option then fails as a number)
NUMBERS = {"ignore_unknown_options": True}


def _write_rows(path: Path, rows: np.ndarray, header: str, force: bool) -> None:
    with atomic_output(path, force) as tmp:
        np.savetxt(tmp, rows, fmt="%.10g", header=header)


@app.command("convert", context_settings=NUMBERS)
def convert(
    values: Annotated[list[float] | None, typer.Argument(help="Numbers (no -- needed)")] = None,
    source: Annotated[str, typer.Option("--from", help="Input convention")] = "relion",
    target: Annotated[str, typer.Option("--to", help="Output convention")] = "relion",
    file: Annotated[Path | None, typer.Option(help="Text or particle file to read")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the rows to this text file")] = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """Convert rotations between conventions (relion, cryosparc, eman, scipy:ZYZ, ...)."""
    from cryomath.so3 import convention_from_matrix, get_convention, matrix_from_convention

    if (file is None) == (not values):
        raise InvalidInputError("give either numbers or --file, not both")
    if out is not None:
        check_output_path(out, force)
    matrices = (
        load_rotations(file, source)
        if file is not None
        else matrix_from_convention(_parse_rows(values, get_convention(source)), source)
    )
    out_convention = get_convention(target)
    rows = convention_from_matrix(matrices, out_convention.name).numpy()
    if out is not None:
        _write_rows(out, rows, " ".join(out_convention.parameters), force)
    result = {
        "from": get_convention(source).name,
        "to": out_convention.name,
        "parameters": list(out_convention.parameters),
        "units": out_convention.units,
        "count": len(rows),
    }
    if out is not None:
        result["output"] = str(out)
    if len(rows) <= 1000 or json:
        result["rotations"] = np.round(rows, 10)
    emit(result, json, title="rotations")


GRID_METHODS = ("healpix", "hopf", "super-fibonacci", "even-angles")


@app.command("grid")
def grid(
    method: Annotated[str, typer.Option(help=f"One of {', '.join(GRID_METHODS)}")] = "healpix",
    order: Annotated[int, typer.Option(help="HEALPix/Hopf order k: 72 * 8^k poses")] = 1,
    n: Annotated[int | None, typer.Option(help="Super-Fibonacci: number of poses")] = None,
    delta: Annotated[float, typer.Option(help="even-angles: step in degrees")] = 15.0,
    even_method: Annotated[str, typer.Option(help="even-angles: P or S")] = "P",
    symmetry: Symmetry = "C1",
    out: Annotated[Path | None, typer.Option(help="STAR file of rlnAngleRot/Tilt/Psi")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of the directions")] = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """Make an orientation grid; report its count and covering radius."""
    import pandas as pd
    import torch

    from cryomath.devices import check_memory
    from cryomath.io import write_star
    from cryomath.so3 import matrix_from_quaternion, relion_euler_from_matrix
    from cryomath.so3.grids import (
        covering_radius,
        even_angles,
        healpix_grid,
        hopf_grid,
        super_fibonacci,
    )
    from cryomath.so3.quaternion import quaternion_from_matrix

    for path in (out, plot):
        if path is not None:
            check_output_path(path, force)
    if method not in GRID_METHODS:
        raise InvalidInputError(f"unknown grid method {method!r}; one of {GRID_METHODS}")
    # poses: 72 * 8^k for the HEALPix-based grids; even angles: the sphere's 41,253 deg^2 over
    # delta^2; about 64 float64 numbers per pose on the way (angles, matrices, quaternions)
    count = {"even-angles": 41_253 / delta**2, "super-fibonacci": n or 72 * 8**order}
    check_memory(count.get(method, 72 * 8**order) * 512, f"a {method} grid")
    nominal = None
    if method == "healpix":
        angles = healpix_grid(order)
        nominal = 60 / 2**order
    elif method == "hopf":
        angles = relion_euler_from_matrix(matrix_from_quaternion(hopf_grid(order)))
        nominal = 60 / 2**order
    elif method == "super-fibonacci":
        count = n if n is not None else 72 * 8**order
        angles = relion_euler_from_matrix(matrix_from_quaternion(super_fibonacci(count)))
    else:
        directions = even_angles(delta, even_method, symmetry)
        angles = torch.cat([directions, torch.zeros_like(directions[:, :1])], -1)
        nominal = delta
    result = {"method": method, "count": int(angles.shape[0])}
    if nominal is not None:
        result["nominal_step_degrees"] = nominal
    if method != "even-angles":
        from cryomath.so3 import matrix_from_relion_euler

        q = quaternion_from_matrix(matrix_from_relion_euler(angles))
        # random probes: 20,000, fewer on big grids (at most 5e9 dot products, about a minute)
        probes = max(1000, min(20_000, 5_000_000_000 // len(q)))
        result["covering_radius_degrees"] = round(math.degrees(covering_radius(q, probes)), 4)
        result["covering_radius_probes"] = probes
    if out is not None:
        frame = pd.DataFrame(angles.numpy(), columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"])
        write_star(out, {"orientations": frame}, force=force)
        result["output"] = str(out)
    if plot is not None:
        from cryomath.plots import plot_directions

        plot_directions(angles[:, :2].numpy(), plot, f"{method} ({len(angles)} poses)", force)
        result["plot"] = str(plot)
    emit(result, json, title="orientation grid")


AVERAGES = ("karcher", "weiszfeld", "chordal", "quaternion")


@app.command("average", context_settings=NUMBERS)
def average(
    source: Annotated[str, typer.Argument(help="Particle file, text file, or numbers")],
    method: Annotated[str, typer.Option(help=f"One of {', '.join(AVERAGES)}")] = "karcher",
    convention: Annotated[str, typer.Option(help="Convention of text input and output")] = "relion",
    json: Json = False,
) -> None:
    """Average rotations (Hartley et al. 2013) and report the spread about the average."""
    import torch

    from cryomath.so3 import (
        chordal_mean,
        convention_from_matrix,
        geodesic_distance,
        get_convention,
        karcher_mean,
        quaternion_mean,
        weiszfeld_median,
    )

    functions = {
        "karcher": karcher_mean,
        "weiszfeld": weiszfeld_median,
        "chordal": chordal_mean,
        "quaternion": quaternion_mean,
    }
    if method not in functions:
        raise InvalidInputError(f"unknown average {method!r}; one of {AVERAGES}")
    rotations = load_rotations(source, convention)
    mean = functions[method](rotations)
    distance = torch.rad2deg(geodesic_distance(rotations, mean))
    conv = get_convention(convention)
    result = {
        "method": method,
        "count": int(rotations.shape[0]),
        "convention": conv.name,
        "parameters": list(conv.parameters),
        "average": np.round(convention_from_matrix(mean, conv.name).numpy(), 8),
        "rms_angle_degrees": float(torch.sqrt((distance**2).mean())),
        "median_angle_degrees": float(distance.median()),
        "max_angle_degrees": float(distance.max()),
    }
    emit(result, json, title="average rotation")


@app.command("distance", context_settings=NUMBERS)
def distance(
    first: Annotated[str, typer.Argument(help="Rotations A: file or numbers '30,60,120'")],
    second: Annotated[str, typer.Argument(help="Rotations B (same count, or one)")],
    convention: Annotated[str, typer.Option(help="Convention of numeric/text input")] = "relion",
    symmetry: Symmetry = "C1",
    json: Json = False,
) -> None:
    """Geodesic angle between rotations A and B (row by row), optionally modulo symmetry."""
    import torch

    from cryomath.so3 import point_group, symmetric_geodesic_distance

    a, b = load_rotations(first, convention), load_rotations(second, convention)
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise InvalidInputError(f"A has {a.shape[0]} rotations and B {b.shape[0]}")
    angles = torch.rad2deg(symmetric_geodesic_distance(a, b, point_group(symmetry))).numpy()
    result = {
        "count": len(angles),
        "symmetry": symmetry,
        "mean_angle_degrees": float(angles.mean()),
        "median_angle_degrees": float(np.median(angles)),
        "max_angle_degrees": float(angles.max()),
    }
    if len(angles) <= 1000 or json:
        result["angles_degrees"] = angles
    emit(result, json, title="rotation distance")


@app.command("expand")
def expand(
    source: Annotated[Path, typer.Argument(help="Particle file (.star, .cs, cryoDRGN .pkl)")],
    target: Annotated[Path, typer.Argument(help="Output particle file")],
    symmetry: Symmetry = "C1",
    force: Force = False,
    json: Json = False,
) -> None:
    """Symmetry expansion (as relion_particle_symmetry_expand): every particle once per
    symmetry operator g, with pose A g; everything else copied."""
    from cryomath.io import read_particles, write_particles
    from cryomath.pipelines.tables import expand_symmetry

    check_output_path(target, force)
    table = read_particles(source, allow_unknown_columns=True)
    expanded = expand_symmetry(table, symmetry)
    write_particles(expanded, target, force=force)
    emit(
        {
            "input": str(source),
            "output": str(target),
            "symmetry": symmetry,
            "operators": expanded.n // table.n,
            "particles": expanded.n,
        },
        json,
        title="symmetry expansion",
    )
