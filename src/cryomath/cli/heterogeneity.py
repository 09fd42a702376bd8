"""``cryomath variability``: principal components of 3-D structure from particles with poses."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import BatchSize, Device, Force, Json, ParticleDiameter, emit


def variability(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with poses and CTFs")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("variability"),
    components: Annotated[int, typer.Option(help="Number of principal components")] = 3,
    iterations: Annotated[int, typer.Option(help="EM iterations")] = 20,
    resolution: Annotated[
        float | None, typer.Option(help="Band limit of the components (A; default 4 pixels)")
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="Mask map (same grid) for the components")
    ] = None,
    particle_diameter: ParticleDiameter = None,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Probabilistic PCA of 3-D structure by EM with the particles' poses and CTFs (cryoSPARC's
    3D variability model): the consensus map, the eigenvolumes and their variances, a series
    of maps along each, every particle's latent coordinates (latent.npy) and figures."""
    import numpy as np
    import torch
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.io import read_mrc, read_particles
    from cryomath.pipelines.variability import analyse_variability

    table = read_particles(particles, allow_unknown_columns=True)
    grid = None
    if mask is not None:
        data, _ = read_mrc(mask, dtype=np.float64)
        grid = torch.from_numpy(data)
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("EM iterations", total=iterations)
        summary = analyse_variability(
            table, out, components, iterations, resolution, grid, particle_diameter, batch_size,
            resolve_device(device), force, lambda i: bar.update(task, completed=i),
        )  # fmt: skip
    brief = {k: v for k, v in summary.items() if k != "log_likelihood_gain"}
    emit(summary if json else brief, json, title="variability")
