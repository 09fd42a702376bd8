"""``cryomath fsc``, ``cryomath reconstruct`` and ``cryomath postprocess``."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import (
    BatchSize,
    Device,
    Force,
    Json,
    ProjectDir,
    Scheduler,
    Symmetry,
    emit,
    scalars,
)
from cryomath.errors import InvalidInputError
from cryomath.io.atomic import check_output_path, writable_directory
from cryomath.io.results import write_json
from cryomath.resolution import HalfMapFSC, automatic_mask, half_map_fsc


def _load_pair(path1: Path, path2: Path, device: str):
    from cryomath.devices import resolve_device
    from cryomath.io import read_mrc

    device = resolve_device(device)
    a, info_a = read_mrc(path1, dtype=np.float64)
    b, info_b = read_mrc(path2, dtype=np.float64)
    voxel = _same_grid(a.shape, b.shape, info_a, info_b)
    return _tensor(a, device), _tensor(b, device), voxel


def _same_grid(shape_a, shape_b, info_a, info_b) -> float:
    """The voxel size of two maps that must share a grid (shape and voxel size)."""
    if tuple(shape_a) != tuple(shape_b):
        raise InvalidInputError(f"maps differ in shape: {tuple(shape_a)} and {tuple(shape_b)}")
    va, vb = info_a.cubic_voxel_size_angstrom(), info_b.cubic_voxel_size_angstrom()
    if abs(va - vb) > 1e-3 * max(va, vb):
        raise InvalidInputError(f"maps differ in voxel size: {va:g} and {vb:g} A")
    return va


def _tensor(array: np.ndarray, device):
    import torch

    return torch.from_numpy(array).to(device)


def _streamed_fsc(path1: Path, path2: Path):
    """The unmasked FSC of two maps read a slab at a time, or None for files that cannot be
    read by slabs (compressed, or axis order other than 1, 2, 3)."""
    from cryomath.errors import MRCFormatError
    from cryomath.io import ImageStack
    from cryomath.resolution.streamed import fourier_shell_correlation_streamed

    if any(p.suffix in (".gz", ".bz2") for p in (path1, path2)):
        return None
    try:
        with ImageStack(path1) as a, ImageStack(path2) as b:
            shapes = [(len(s), *s.image_shape) for s in (a, b)]
            voxel = _same_grid(*shapes, a.info, b.info)
            return fourier_shell_correlation_streamed(a, b, voxel)
    except MRCFormatError as exc:
        if "axis order" in str(exc):
            return None
        raise


def _plot(summary: dict, path: Path, title: str, force: bool) -> None:
    from cryomath.plots import plot_fsc

    curves = {"FSC": summary["fsc"]}
    if "fsc_masked" in summary:
        curves = {
            "unmasked": summary["fsc_unmasked"],
            "masked": summary["fsc_masked"],
            "phase randomised": summary["fsc_phase_randomized"],
            "corrected": summary["fsc"],
        }
    plot_fsc(summary["spatial_frequency_per_angstrom"], curves, path, title, force)


def _read_mask(path: Path, like):
    from cryomath.io import read_mrc

    mask, _ = read_mrc(path, dtype=np.float64)
    if mask.shape != tuple(like.shape):
        raise InvalidInputError(f"mask {path} is {mask.shape}, the maps are {tuple(like.shape)}")
    return _tensor(mask, like.device)


def fsc(
    map1: Annotated[Path, typer.Argument(help="First (half) map")],
    map2: Annotated[Path, typer.Argument(help="Second (half) map")],
    mask: Annotated[Path | None, typer.Option(help="Mask map (same grid)")] = None,
    auto_mask: Annotated[bool, typer.Option("--auto-mask", help="Mask from a threshold")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the curve as PNG")] = None,
    local: Annotated[Path | None, typer.Option(help="Write a local-resolution map here")] = None,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Fourier shell correlation and the resolution at 0.143, 0.5 and half-bit. Without a mask
    or --local, on the CPU, the maps are streamed (read a slab at a time; memory does not grow
    with the map); otherwise they are loaded."""
    for path in (plot, local):
        if path is not None:
            check_output_path(path, force)
    streamed = None
    if mask is None and not auto_mask and local is None and device == "cpu":
        streamed = _streamed_fsc(map1, map2)
    if streamed is not None:
        summary = HalfMapFSC(streamed, streamed.fsc).summary()
    else:
        a, b, voxel = _load_pair(map1, map2, device)
        m = (
            _read_mask(mask, a)
            if mask is not None
            else (automatic_mask((a + b) / 2, voxel) if auto_mask else None)
        )
        summary = half_map_fsc(a, b, voxel, m).summary()
    if plot is not None:
        _plot(summary, plot, f"{map1.name} / {map2.name}", force)
        summary["plot"] = str(plot)
    if local is not None:
        from cryomath.io import write_mrc
        from cryomath.resolution import local_resolution

        local_map = local_resolution(a, b, voxel)
        write_mrc(local, local_map.cpu().numpy(), voxel, force=force)
        summary["local_resolution_map"] = str(local)
        summary["local_resolution_median_angstrom"] = float(local_map.median())
    emit(summary if json else scalars(summary), json, title="FSC")


def _write_fsc_tables(out: Path, summary: dict, force: bool) -> None:
    import pandas as pd

    from cryomath.io import write_star

    frequency = summary["spatial_frequency_per_angstrom"]
    table = pd.DataFrame(
        {
            "rlnSpectralIndex": np.arange(len(frequency)),
            "rlnResolution": frequency,
            "rlnAngstromResolution": np.where(
                frequency > 0, 1 / np.maximum(frequency, 1e-12), 999.0
            ),
            "rlnFourierShellCorrelation": summary["fsc"],
        }
    )
    write_star(out / "fsc.star", {"fsc": table}, force=force)
    write_json(out / "fsc.json", summary, force)


def reconstruct(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs)")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("reconstruction"),
    halves: Annotated[bool, typer.Option("--halves", help="Also write the half maps")] = False,
    symmetry: Symmetry = "C1",
    pad: Annotated[float, typer.Option(help="Padding factor")] = 2.0,
    method: Annotated[str, typer.Option(help="direct or cg")] = "direct",
    iterations: Annotated[int, typer.Option(help="cg: at most this many iterations")] = 50,
    batch_size: BatchSize = 256,
    no_ctf: Annotated[bool, typer.Option("--no-ctf", help="Ignore the CTF")] = False,
    ewald: Annotated[
        bool, typer.Option("--ewald", help="Insert the Ewald sphere's two side-bands")
    ] = False,
    reverse_curvature: Annotated[
        bool, typer.Option("--reverse-curvature", help="--ewald: the other curvature (hand)")
    ] = False,
    particle_diameter: Annotated[
        float | None, typer.Option(help="--ewald: mask the side-bands to this diameter (A)")
    ] = None,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    chunk_size: Annotated[int | None, typer.Option(help="Particles per Dask task")] = None,
    project_dir: ProjectDir = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """Reconstruct half maps and the full map from particles with poses; FSC and resolution.
    ``--scheduler``: Dask tasks return partial Fourier sums, added in a tree. ``--ewald``: as
    ``relion_reconstruct --ewald`` (``--reverse_curvature``, ``--mask_diameter``: here
    ``--particle-diameter``)."""
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.imaging import Ewald
    from cryomath.io import read_particles, write_mrc
    from cryomath.pipelines import dask_client, reconstruct_particles
    from cryomath.reconstruction import reconstruct_least_squares_halves
    from cryomath.so3 import point_group

    if method not in ("direct", "cg"):
        raise InvalidInputError(f"unknown method {method!r}: direct or cg")
    if batch_size < 1:
        raise InvalidInputError("--batch-size must be at least 1")
    resolve_device(device)
    names = ["full.mrc", "fsc.png", "fsc.star", "fsc.json"] + (
        ["half1.mrc", "half2.mrc"] if halves else []
    )
    for name in names:
        check_output_path(out / name, force)
    table = read_particles(particles, allow_unknown_columns=True, project_dir=project_dir)
    group = point_group(symmetry)
    if method == "cg" and scheduler:
        raise InvalidInputError("--method cg runs in one process; drop --scheduler")
    if method == "cg" and len(group) > 1:
        raise InvalidInputError("--method cg does not take symmetry yet; use direct")
    if not ewald and (reverse_curvature or particle_diameter is not None):
        raise InvalidInputError("--reverse-curvature and --particle-diameter go with --ewald")
    if ewald and (no_ctf or method == "cg"):
        raise InvalidInputError("--ewald needs the CTF and --method direct")
    curved = Ewald(-1 if reverse_curvature else 1, particle_diameter) if ewald else None
    with Progress(disable=json, transient=True) as bar, dask_client(scheduler) as client:
        if method == "cg":  # two halves, then the full map from their average
            cg = bar.add_task("conjugate gradients", total=3 * iterations)
            result = reconstruct_least_squares_halves(
                table, pad, use_ctf=not no_ctf, max_iterations=iterations,
                batch_size=batch_size, device=device, callback=lambda i, r: bar.advance(cg, 1),
            )  # fmt: skip
        else:
            task = bar.add_task("inserting", total=table.n)
            result = reconstruct_particles(
                table, pad, group, batch_size, use_ctf=not no_ctf,
                progress=lambda k: bar.advance(task, k), client=client, chunk_size=chunk_size,
                device=device, ewald=curved,
            )  # fmt: skip
    pixel = result.pixel_size_angstrom
    writable_directory(out)
    write_mrc(out / "full.mrc", result.full.cpu().numpy(), pixel, force=force)
    if halves:
        write_mrc(out / "half1.mrc", result.half1.cpu().numpy(), pixel, force=force)
        write_mrc(out / "half2.mrc", result.half2.cpu().numpy(), pixel, force=force)
    summary = HalfMapFSC(result.fsc, result.fsc.fsc).summary()
    _write_fsc_tables(out, summary, force)
    _plot(summary, out / "fsc.png", f"half maps of {particles.name}", force)
    brief = scalars(summary)
    curvature = ("reverse" if reverse_curvature else "positive") if ewald else "off"
    brief.update(particles=table.n, method=method, symmetry=symmetry, output=str(out),
                 ewald=curvature)  # fmt: skip
    emit({**summary, **brief} if json else brief, json, title="reconstruction")


def postprocess(
    half1: Annotated[Path, typer.Argument(help="Half map 1")],
    half2: Annotated[Path, typer.Argument(help="Half map 2")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("postprocess"),
    bfactor: Annotated[
        float | None, typer.Option(help="B-factor to apply (A^2, negative sharpens)")
    ] = None,
    auto: Annotated[
        bool, typer.Option("--auto", help="Fit the B-factor (Guinier, 10 A to resolution)")
    ] = False,
    mask: Annotated[Path | None, typer.Option(help="Mask map")] = None,
    auto_mask: Annotated[bool, typer.Option("--auto-mask", help="Mask from a threshold")] = False,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Sharpened, FSC-weighted, low-passed map from two half maps; FSC and Guinier plots."""
    from cryomath.io import write_mrc
    from cryomath.plots import plot_guinier
    from cryomath.resolution import guinier, postprocess_half_maps

    if bfactor is not None and auto:
        raise InvalidInputError("give --bfactor or --auto, not both")
    for name in ("postprocess.mrc", "fsc.png", "guinier.png", "fsc.star", "fsc.json"):
        check_output_path(out / name, force)
    a, b, voxel = _load_pair(half1, half2, device)
    m = (
        _read_mask(mask, a)
        if mask is not None
        else (automatic_mask((a + b) / 2, voxel) if auto_mask else None)
    )
    result = postprocess_half_maps(a, b, voxel, m, bfactor, fit_bfactor_from_guinier=auto)
    summary = result.fsc.summary()
    writable_directory(out)
    write_mrc(out / "postprocess.mrc", result.volume.cpu().numpy(), voxel, force=force)
    s2, original = guinier((a + b) / 2, voxel)
    _, after = guinier(result.volume, voxel)
    lines = {"average of halves": original.cpu().numpy(), "post-processed": after.cpu().numpy()}
    plot_guinier(s2.cpu().numpy(), lines, out / "guinier.png", "Guinier plot", force)
    _plot(summary, out / "fsc.png", "half-map FSC", force)
    summary.update(
        bfactor_angstrom2=result.bfactor_angstrom2,
        final_resolution_angstrom=result.resolution_angstrom, output=str(out),
    )  # fmt: skip
    _write_fsc_tables(out, summary, force)
    emit(summary if json else scalars(summary), json, title="post-processing")
