"""Denoising a particle stack (``cryomath denoise``): the estimates that need the whole stack
in streaming passes, then each batch denoised and written (``cryomath.denoising``).

* ``wiener``: pass 1 the noise from the images' background outside the particle
  (:func:`background_noise`), pass 2 the signal power per shell, pass 3 the Wiener filter (the
  noise-free images with their CTF, or CTF-corrected with ``ctf_corrected``).
* ``cwf``: pass 1 the noise as for ``wiener``, passes 2 and 3 the mean and the steerable
  covariance (``denoising.cwf``), pass 4 each image's covariance-Wiener estimate.
* ``poisson-gamma``: images of counts minus ``N0 = dose * pixel^2`` (``simulate --dose``);
  pass 1 the counts' mean and variance per pixel (the Gamma prior), pass 2 each image's
  posterior mean rate, written minus ``N0`` like its input.

Writes ``denoised.mrcs`` (in the table's order) and ``particles.star`` pointing at it.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cryomath.denoising import (
    GammaPrior,
    cwf_denoise,
    estimate_signal_power,
    estimate_steerable_covariance,
    gamma_prior_from_moments,
    poisson_gamma_posterior_mean,
    wiener_denoise,
)
from cryomath.devices import Staging
from cryomath.errors import InvalidInputError
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.io import MRCStackWriter, write_relion_star

METHODS = ("wiener", "cwf", "poisson-gamma")


def background_noise(batches, n: int, pixel_size_angstrom: float,
                     particle_diameter_angstrom: float | None = None):  # fmt: skip
    """The noise power per shell of ``n``-pixel images from their background outside a
    circle of ``particle_diameter_angstrom`` (default 90 % of the box;
    ``imaging.estimate_noise_from_background``)."""
    radius = 0.45 * n
    if particle_diameter_angstrom is not None:
        radius = particle_diameter_angstrom / (2 * pixel_size_angstrom)
    return estimate_noise_from_background(batches, radius)


def denoise_particles(table, out: Path, method: str = "wiener",
                      particle_diameter_angstrom: float | None = None,
                      dose_e_per_a2: float | None = None, batch_size: int = 256, device=None,
                      force: bool = False, progress: Callable[[int], None] | None = None,
                      ctf_corrected: bool = False) -> dict:  # fmt: skip
    """Denoise ``table`` 's images into ``out`` (module docstring); returns a summary."""
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    table.require("image_size", "pixel_size_angstrom", purpose="denoising")
    sizes = set(np.asarray(table.image_size).tolist())
    if len(sizes) != 1:
        raise InvalidInputError(f"denoising needs one box size, got {sorted(sizes)}")
    n = sizes.pop()
    pixel = float(np.asarray(table.pixel_size_angstrom).flat[0])
    staging = Staging(device)

    def batches(**kwargs):
        return iter_batches(table, batch_size, staging.device, torch.float64, **kwargs)

    if method != "poisson-gamma":
        noise = background_noise(batches(use_ctf=False), n, pixel, particle_diameter_angstrom)
    if method == "wiener":
        signal = estimate_signal_power(batches(), noise)

        def denoise(batch):
            return wiener_denoise(batch, signal, noise, ctf_corrected)

    elif method == "cwf":
        prior = estimate_steerable_covariance(batches, noise)

        def denoise(batch):
            return cwf_denoise(batch, prior, noise, ctf_corrected)

    else:
        if dose_e_per_a2 is None:
            raise InvalidInputError("poisson-gamma needs the dose (--dose, e/A^2)")
        n0 = dose_e_per_a2 * pixel**2
        prior = _gamma_prior(batches(use_ctf=False), n0, table.n)

        def denoise(batch):
            return poisson_gamma_posterior_mean(_counts(batch, n0), prior) - n0

    out.mkdir(parents=True, exist_ok=True)
    stack = out / "denoised.mrcs"
    with MRCStackWriter(stack, table.n, (n, n), pixel, force=force) as writer:
        for batch in batches(in_table_order=True):
            writer.write(staging.to_host(denoise(batch).float()))
            if progress is not None:
                progress(len(batch))
    denoised = replace(table, image_paths=np.full(table.n, stack.name, dtype=object),
                       image_indices=np.arange(table.n))  # fmt: skip
    write_relion_star(denoised, out / "particles.star", force=force)
    return {"method": method, "images": table.n, "stack": str(stack),
            "particles": str(out / "particles.star"),
            "ctf_corrected": ctf_corrected and method != "poisson-gamma"}  # fmt: skip


def _gamma_prior(batches, n0: float, count: int) -> GammaPrior:
    """The method-of-moments Gamma prior per pixel from streamed batches (counts = image +
    N0): the same as ``denoising.gamma_prior_from_counts`` on the whole stack."""
    total = square = None
    for batch in batches:
        counts = _counts(batch, n0)
        total = counts.sum(0) if total is None else total + counts.sum(0)
        square = (counts**2).sum(0) if square is None else square + (counts**2).sum(0)
    mean = total / count
    return gamma_prior_from_moments(mean, (square - count * mean**2) / (count - 1))


def _counts(batch, n0: float) -> torch.Tensor:
    """The batch's counts: its images plus ``N0``, the FFT's rounding below 0 clamped."""
    counts = batch.images() + n0
    if bool((counts < -0.5).any()):
        raise InvalidInputError(
            "negative counts: are these counting images minus the mean count at that dose?"
        )
    return counts.clamp(min=0)
