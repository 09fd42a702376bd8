"""Variability of a particle set with known poses (``cryomath variability``): the consensus map,
then the principal components of 3-D structure, by probabilistic PCA
(``heterogeneity.fit_principal_components``) or from the covariance
(``heterogeneity.estimate_covariance``).

Outputs in ``out``: ``mean.mrc`` (the consensus), ``component_K.mrc`` (the unit-norm
eigenvolumes, largest variance first), ``component_K_frame_J.mrc`` (the mean plus
``c sqrt(variance)`` times the component for ``c`` from -2 to 2: the series along it, e.g. for
ChimeraX's ``vseries``), ``variance.mrc`` (the variance of every voxel the components explain,
``sum_k variance_k component_k^2``), ``latent.npy`` (``(N, K)``, each particle's posterior mean
coordinates in the table's order, for ``heterogeneity.metrics`` or any plot), ``latent_sd.npy``
(their posterior standard deviations), ``latent.png`` (variances, histogram, scatter) and
``components.png`` (the central z-slice of every frame). With ``kernel_series``, also
``component_K_kernel_J.mrc``: the maps at the same latent points by kernel regression of the
particles (``heterogeneity.kernel_regression_maps``), which follow a large motion that the
linear series cannot.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from cryomath.devices import Staging
from cryomath.errors import InvalidInputError
from cryomath.heterogeneity import (
    estimate_covariance,
    fit_principal_components,
    kernel_regression_maps,
)
from cryomath.imaging import iter_batches
from cryomath.io import write_mrc
from cryomath.io.atomic import check_output_path, writable_directory
from cryomath.io.results import write_array
from cryomath.pipelines.denoising import background_noise
from cryomath.plots import plot_gallery, plot_latent
from cryomath.reconstruction import accumulate_halves, half_subsets, maps_from_halves
from cryomath.reconstruction.direct import volume_grid

FRAMES = (-2.0, -1.0, 0.0, 1.0, 2.0)  # standard deviations along each component


@dataclass(frozen=True)
class VariabilitySettings:
    """``method``: ``"ppca"`` (EM from random components, ``iterations`` steps) or
    ``"covariance"`` (moments in a sketched subspace, then ``iterations`` EM refinement steps;
    default 2); ``resolution_angstrom``: the band limit (default a quarter of Nyquist's shells);
    the noise comes from the images' background outside ``particle_diameter_angstrom``
    (``pipelines.denoising.background_noise``); ``kernel_series``: maps along each component by
    kernel regression too."""

    method: Literal["ppca", "covariance"] = "ppca"
    n_components: int = 3
    iterations: int | None = None
    resolution_angstrom: float | None = None
    particle_diameter_angstrom: float | None = None
    batch_size: int = 256
    kernel_series: bool = False

    @property
    def steps(self) -> int:
        """The EM steps: ``iterations``, by default 20 for PPCA and 2 for the covariance."""
        if self.iterations is not None:
            return self.iterations
        return 20 if self.method == "ppca" else 2


def _outputs(out: Path, k: int, kernel: bool) -> list[Path]:
    names = ["mean.mrc", "variance.mrc", "latent.npy", "latent_sd.npy", "latent.png",
             "components.png"]  # fmt: skip
    for c in range(1, k + 1):
        for j in range(1, len(FRAMES) + 1):
            names += [f"component_{c}_frame_{j}.mrc"]
            names += [f"component_{c}_kernel_{j}.mrc"] if kernel else []
        names += [f"component_{c}.mrc"]
    return [out / name for name in names]


def analyse_variability(table, out: Path, settings: VariabilitySettings = VariabilitySettings(),
                        mask: torch.Tensor | None = None, device=None, force: bool = False,
                        progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """The variability of ``table`` 's particles into ``out`` (module docstring, ``settings``);
    ``mask`` (``(n, n, n)``) multiplies the components; ``progress(p)`` after each pass over
    the particles. Returns a summary."""
    table.require("rotations", "ctf", "pixel_size_angstrom", purpose="variability analysis")
    if settings.method not in ("ppca", "covariance"):
        raise InvalidInputError(f"unknown method {settings.method!r}: ppca or covariance")
    n, voxel = volume_grid(table)
    if mask is not None and tuple(mask.shape) != (n, n, n):
        raise InvalidInputError(f"the mask {tuple(mask.shape)} is not on the particles' grid")
    for path in _outputs(out, settings.n_components, settings.kernel_series):
        check_output_path(path, force)
    staging = Staging(device)
    max_shell = n // 4
    if settings.resolution_angstrom is not None:
        if settings.resolution_angstrom < 2 * voxel:
            raise InvalidInputError(f"the resolution must be at least Nyquist, {2 * voxel:g} A")
        max_shell = int(n * voxel / settings.resolution_angstrom)

    def batches(**kwargs):
        return iter_batches(table, settings.batch_size, staging.device, torch.float64, **kwargs)

    noise = background_noise(batches(use_ctf=False), n, voxel,
                             settings.particle_diameter_angstrom)  # fmt: skip
    halves = accumulate_halves(table, half_subsets(table), device=staging.device)
    mean = maps_from_halves(halves).full
    if mask is not None:
        mask = mask.to(mean)
    if settings.method == "ppca":
        result = fit_principal_components(batches, mean, voxel, noise, settings.n_components,
                                          settings.steps, max_shell, mask=mask,
                                          progress=progress)  # fmt: skip
    else:
        result = estimate_covariance(batches, mean, voxel, noise, settings.n_components,
                                     max_shell=max_shell, mask=mask, refine=settings.steps,
                                     progress=progress)  # fmt: skip
    writable_directory(out)
    _write(out, result, voxel, force)
    if settings.kernel_series:
        _write_kernel_series(table, out, result, settings, staging.device, force)
    return {"particles": table.n, "method": settings.method,
            "components": settings.n_components, "iterations": settings.steps,
            "max_shell": max_shell, "resolution_angstrom": n * voxel / max(max_shell, 1),
            "variances": result.variances.cpu().tolist(),
            "log_likelihood_gain": result.log_likelihood_gain,
            "latent": str(out / "latent.npy"), "output": str(out)}  # fmt: skip


def _write_kernel_series(table, out: Path, result, settings, device, force: bool) -> None:
    """The kernel-regression maps at ``c`` standard deviations along each component."""
    latent = result.latent.cpu().numpy()
    k = latent.shape[1]
    points = np.zeros((k * len(FRAMES), k))
    for c in range(k):
        points[c * len(FRAMES) : (c + 1) * len(FRAMES), c] = np.asarray(FRAMES) * latent[:, c].std()
    maps = kernel_regression_maps(table, latent, points, batch_size=settings.batch_size,
                                  device=device).maps.cpu()  # fmt: skip
    voxel = volume_grid(table)[1]
    for c in range(k):
        for j in range(len(FRAMES)):
            write_mrc(out / f"component_{c + 1}_kernel_{j + 1}.mrc",
                      maps[c * len(FRAMES) + j].float().numpy(), voxel, force=force)  # fmt: skip


def _write(out: Path, result, voxel: float, force: bool) -> None:
    mean = result.mean.cpu()
    write_mrc(out / "mean.mrc", mean.float().numpy(), voxel, force=force)
    variance = torch.einsum("k,kzyx->zyx", result.variances.clamp(min=0), result.components**2)
    write_mrc(out / "variance.mrc", variance.cpu().float().numpy(), voxel, force=force)
    slices, labels = [], []
    n = mean.shape[-1]
    for c, (component, variance) in enumerate(
        zip(result.components.cpu(), result.variances.cpu(), strict=True), 1
    ):
        write_mrc(out / f"component_{c}.mrc", component.float().numpy(), voxel, force=force)
        for j, steps in enumerate(FRAMES, 1):
            frame = mean + steps * float(variance.clamp(min=0)) ** 0.5 * component
            write_mrc(out / f"component_{c}_frame_{j}.mrc", frame.float().numpy(), voxel,
                      force=force)  # fmt: skip
            slices.append(frame[n // 2].numpy())
            labels.append(f"PC{c} {steps:+g} sd")
    latent = result.latent.cpu().numpy()
    write_array(out / "latent.npy", latent, force)
    write_array(out / "latent_sd.npy", result.latent_sd.cpu().numpy(), force)
    plot_latent(latent, result.variances.cpu().numpy(), out / "latent.png",
                f"{len(latent)} particles", force)  # fmt: skip
    plot_gallery(np.stack(slices), labels, out / "components.png",
                 "central z-slice along each component", force)  # fmt: skip
