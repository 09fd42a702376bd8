"""``cryomath variability`` (principal components of 3-D structure), ``cryomath train-vae`` and
``cryomath analyze`` (a cryoDRGN-style neural model): heterogeneity of particles with poses."""

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


def train_vae(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with poses and CTFs")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("vae"),
    zdim: Annotated[int, typer.Option(help="Latent dimension")] = 1,
    epochs: Annotated[int, typer.Option(help="Epochs (with --continue: the new total)")] = 20,
    autodecoder: Annotated[
        bool, typer.Option(help="A latent per particle, no encoder (cryoDRGN-AI)")
    ] = False,
    beta: Annotated[
        float, typer.Option(help="Weight of the KL divergence (at SNR 0.05 try 0.1)")
    ] = 1.0,
    learning_rate: Annotated[float, typer.Option(help="Adam's learning rate")] = 3e-3,
    minibatch: Annotated[int, typer.Option(help="Particles per gradient step")] = 32,
    width: Annotated[int, typer.Option(help="Width of the decoder's hidden layers")] = 128,
    resolution: Annotated[
        float | None, typer.Option(help="Band limit of the model (A; default a third of the box)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial networks and the order")] = 0,
    posterior_samples: Annotated[
        int,
        typer.Option(
            help="Importance samples of each latent's posterior mean (even; 0: "
            "Laplace's mode, at 64^2 a fifth of the latents' cost)"
        ),
    ] = 32,
    resume: Annotated[
        bool, typer.Option("--continue", help="Continue from the checkpoint in --out")
    ] = False,
    particle_diameter: ParticleDiameter = None,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Train a cryoDRGN-style variational autoencoder (or autodecoder) with the particles'
    poses and CTFs: latent.npy, latent_sd.npy, the map at z = 0, a checkpoint every epoch."""
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.errors import InvalidInputError
    from cryomath.heterogeneity.neural import NeuralSettings
    from cryomath.io import read_particles
    from cryomath.pipelines.neural import train_neural_model
    from cryomath.reconstruction.direct import volume_grid

    table = read_particles(particles, allow_unknown_columns=True)
    max_shell = None
    if resolution is not None:
        n, voxel = volume_grid(table)
        if resolution < 2 * voxel:
            raise InvalidInputError(f"the resolution must be at least Nyquist, {2 * voxel:g} A")
        max_shell = max(2, int(n * voxel / resolution))
    settings = NeuralSettings(zdim, autodecoder, epochs, minibatch, learning_rate, beta=beta,
                              width=width, max_shell=max_shell, seed=seed,
                              posterior_samples=posterior_samples)  # fmt: skip
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("training", total=table.n)

        def on_epoch(line: str) -> None:
            bar.reset(task)
            if not json:
                bar.console.print(line)

        summary = train_neural_model(table, out, settings, resume=resume,
                                     particle_diameter_angstrom=particle_diameter,
                                     device=resolve_device(device), force=force,
                                     progress=lambda k: bar.advance(task, k),
                                     on_epoch=on_epoch)  # fmt: skip
    brief = {k: v for k, v in summary.items() if k not in ("objective", "settings")}
    emit(summary if json else brief, json, title="train-vae")


def analyze(
    folder: Annotated[Path, typer.Argument(help="The output folder of train-vae")],
    states: Annotated[int, typer.Option(help="Number of k-means states")] = 3,
    force: Force = False,
    json: Json = False,
) -> None:
    """The latent embedding of a trained model (embedding.png), its k-means states
    (states.npy) and the decoder's map at each state's centre (state_K.mrc)."""
    from cryomath.pipelines.neural import analyze_neural_model

    emit(analyze_neural_model(folder, states, force), json, title="analyze")
