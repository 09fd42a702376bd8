"""``cryomath variability``: principal components of 3-D structure from particles with poses."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import BatchSize, Device, Force, Json, ParticleDiameter, emit


def variability(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with poses and CTFs")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("variability"),
    components: Annotated[int, typer.Option(help="Number of principal components")] = 3,
    method: Annotated[
        str, typer.Option(help="ppca (EM) or covariance (moments in a sketched subspace)")
    ] = "ppca",
    iterations: Annotated[
        int | None, typer.Option(help="EM steps (default 20 for ppca, 2 for covariance)")
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Band limit of the components (A; default 4 pixels)")
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="Mask map (same grid) for the components")
    ] = None,
    kernel_series: Annotated[
        bool, typer.Option(help="Also maps along each component by kernel regression")
    ] = False,
    particle_diameter: ParticleDiameter = None,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Principal components of 3-D structure with the particles' poses and CTFs, by
    probabilistic PCA (EM; cryoSPARC's 3D variability model) or from the covariance
    (Katsevich et al. 2015, sketched as RECOVAR does): the consensus map, the eigenvolumes and
    their variances, a series of maps along each, the variance map, every particle's latent
    coordinates (latent.npy, latent_sd.npy) and figures."""
    import numpy as np
    import torch
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.io import read_mrc, read_particles
    from cryomath.pipelines.variability import VariabilitySettings, analyse_variability

    table = read_particles(particles, allow_unknown_columns=True)
    grid = None
    if mask is not None:
        data, _ = read_mrc(mask, dtype=np.float64)
        grid = torch.from_numpy(data)
    settings = VariabilitySettings(method, components, iterations, resolution, particle_diameter,
                                   batch_size, kernel_series)  # fmt: skip
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("passes over the particles", total=None)
        summary = analyse_variability(table, out, settings, grid, resolve_device(device), force,
                                      lambda i: bar.update(task, completed=i))  # fmt: skip
    brief = {k: v for k, v in summary.items() if k != "log_likelihood_gain"}
    emit(summary if json else brief, json, title="variability")
