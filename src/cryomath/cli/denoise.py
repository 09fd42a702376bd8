"""``cryomath denoise``: a particle stack denoised by the posterior mean of a conjugate model."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import BatchSize, Device, Force, Json, ParticleDiameter, emit


def denoise(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with their images")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("denoised"),
    method: Annotated[
        str, typer.Option(help="wiener (SSNR from the data), cwf (covariance) or poisson-gamma")
    ] = "wiener",
    ctf_corrected: Annotated[
        bool, typer.Option("--ctf-corrected", help="wiener, cwf: estimate the CTF-free images")
    ] = False,
    particle_diameter: ParticleDiameter = None,
    dose: Annotated[
        float | None, typer.Option("--dose", help="poisson-gamma: the dose (e/A^2) of counts")
    ] = None,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Denoise a particle stack: ``wiener`` (the signal's power per shell from the images, the
    noise from their background), ``cwf`` (covariance Wiener filtering: the images' mean and
    steerable covariance, eigenvalues shrunk), both giving the noise-free images with their CTF
    (``--ctf-corrected``: without), or ``poisson-gamma`` (counting images, a Gamma prior per
    pixel from the stack); writes denoised.mrcs and a particles STAR pointing at it."""
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.io import read_particles
    from cryomath.io.atomic import check_output_path
    from cryomath.pipelines.denoising import denoise_particles

    for name in ("denoised.mrcs", "particles.star"):
        check_output_path(out / name, force)
    table = read_particles(particles, allow_unknown_columns=True)
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("denoising", total=table.n)
        summary = denoise_particles(table, out, method, particle_diameter, dose, batch_size,
                                    resolve_device(device), force,
                                    lambda k: bar.advance(task, k), ctf_corrected)  # fmt: skip
    emit(summary, json, title="denoised")
