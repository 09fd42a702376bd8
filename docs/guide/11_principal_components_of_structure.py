# %% [markdown]
# # Principal components of 3-D structure (after Tagare et al., 2015)
#
# When the particles of a dataset differ, one map averages them. The linear answer models
# each particle's map as the consensus plus a few directions of change:
# `V_i = mu + sum_k z_ik V_k`, with `z_i ~ N(0, I)`. With the poses and CTFs known, the
# components and each particle's coordinates come from expectation-maximisation on the images
# themselves (`cryomath.heterogeneity.fit_principal_components`, the model of cryoSPARC's 3D
# variability analysis; `cryomath variability` on the command line). This page fits it to
# two simulated datasets. In the first the particles change by an amount of density, which is
# linear. In the second a domain moves, and the linear model needs more and more components
# as the motion grows. Then the covariance itself is estimated from the images' second
# moments (Katsevich et al.), and a hyper-molecule (Lederman & Singer), a map that depends on
# the coordinate in any smooth way, follows the large motion.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier.masks import spherical_mask
from cryomath.heterogeneity import (
    estimate_covariance,
    fit_principal_components,
    kernel_regression_maps,
    latent_correlation,
)
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.io import read_particles
from cryomath.pipelines import read_conformations, read_volume, simulate_dataset
from cryomath.reconstruction import accumulate_halves, maps_from_halves
from cryomath.resolution import weight_by_shell
from cryomath.simulate import SimulationSettings

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)
n, pixel = 24, 3.0
base, _ = read_volume(BUNDLED_MODEL, n, pixel)
upper = (torch.arange(n)[:, None, None] >= n // 2).double()


def moved(shift):
    """The N-domain with its upper half moved along x by ``shift`` voxels."""
    return base * (1 - upper) + torch.roll(base * upper, shift, -1)


def analyse(volumes, name, components=3):
    """800 particles along a trajectory through ``volumes`` (SNR 1, CTF), then PPCA."""
    folder = OUT / name
    settings = SimulationSettings(n_particles=800, pixel_size_angstrom=pixel, snr=1.0, seed=4,
                                  trajectory=True)  # fmt: skip
    simulate_dataset(volumes, folder, settings, force=True)
    table = read_particles(folder / "particles.star")

    def batches():
        return iter_batches(table, 512, None, torch.float64)

    noise = estimate_noise_from_background(batches(), 0.45 * n)
    mean = maps_from_halves(accumulate_halves(table, table.random_subset)).full
    mask = spherical_mask((n, n, n), 0.4 * n, 3.0, dtype=torch.float64)
    result = fit_principal_components(batches, mean, pixel, noise, components, 6,
                                      max_shell=n // 3, mask=mask)  # fmt: skip
    truth = read_conformations(folder).coordinate
    return result, latent_correlation(result.latent.numpy(), truth)


# %% [markdown]
# ## A linear change: one component
# The upper half of the domain fades out along the trajectory (`(1 - t) V_0 + t V_1` is linear
# in `t`). The first component carries nearly all the variance, and its coordinate is the
# trajectory's.

# %%
fading, fading_corr = analyse(torch.stack([base, base * (1 - upper)]), "fading")
share = fading.variances / fading.variances.sum()
print(f"fading: variance shares {np.round(share.numpy(), 3)}, |rho| = {fading_corr.best:.3f}")
assert fading_corr.dimension == 0 and fading_corr.best > 0.95 and float(share[0]) > 0.6

# %% [markdown]
# ## A large motion: the linear model spreads it over components
# Now the same half slides along x by up to 6 voxels (18 Angstrom), through 7 frames. A small
# motion would be nearly linear (its first-order Taylor term); a large one is not. The first
# component's share of the variance falls, a second one takes a large share, and the two
# coordinates trace an arc rather than a line: the failure of linear methods on large motions
# that motivates cryoDRGN-style models. The first coordinate still orders the particles along
# the trajectory.

# %%
large, large_corr = analyse(torch.stack([moved(s) for s in range(7)]), "large_motion")
large_share = (large.variances / large.variances.sum()).numpy()
print(f"large motion: variance shares {np.round(large_share, 3)}, |rho| = {large_corr.best:.3f}")
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for result, label in ((fading, "fading"), (large, "large motion")):
    shares = (result.variances / result.variances.sum()).numpy()
    axes[0].plot(np.arange(1, 4), shares, "o-", label=label)
axes[0].set_xlabel("component")
axes[0].set_ylabel("share of variance")
axes[0].legend()
truth = read_conformations(OUT / "large_motion").coordinate
axes[1].scatter(large.latent[:, 0], large.latent[:, 1], c=truth, s=3, cmap="viridis")
axes[1].set_xlabel("latent 1")
axes[1].set_ylabel("latent 2")
axes[1].set_title("large motion, coloured by t", fontsize=9)
axes[2].imshow(large.components[0, :, n // 2, :].numpy(), cmap="RdBu", origin="lower")
axes[2].set_title("first component (x-z slice)", fontsize=9)
axes[2].axis("off")
fig.savefig(OUT / "principal_components.png", dpi=80, bbox_inches="tight")
plt.close(fig)
assert large_corr.best > 0.9
assert float(share[0]) > float(large_share[0]) + 0.1 and float(large_share[1]) > 0.15

# %% [markdown]
# ## The covariance itself (after Katsevich, Katsevich & Singer, 2015)
# PPCA fits a low-rank model by EM. The other linear route estimates the covariance of the
# 3-D structure directly, by least squares on the images' second moments:
# `sum_i A_i^T A_i Sigma A_i^T A_i = sum_i A_i^T (r_i r_i^T - N_i) A_i`. That matrix is
# `N^3 x N^3`, so `cryomath.heterogeneity.estimate_covariance` never forms it: a few of its
# columns, each a weighted direct inversion (RECOVAR's idea), sketch its range; the least
# squares problem is then solved exactly in that span, and refined by two EM steps (the
# columns average `z z^T` over the few images that hold both of their frequencies, which
# adds noise outside the range beyond rank 1). On the fading dataset it finds the same
# component as PPCA and the same coordinates.

# %%
fading_table = read_particles(OUT / "fading" / "particles.star")


def fading_batches():
    return iter_batches(fading_table, 512, None, torch.float64)


fading_noise = estimate_noise_from_background(fading_batches(), 0.45 * n)
fading_mean = maps_from_halves(accumulate_halves(fading_table, fading_table.random_subset)).full
covariance = estimate_covariance(fading_batches, fading_mean, pixel, fading_noise, 2,
                                 max_shell=n // 3,
                                 mask=spherical_mask((n, n, n), 0.4 * n, 3.0,
                                                     dtype=torch.float64))  # fmt: skip
agreement = abs(float((covariance.components[0] * fading.components[0]).sum()))
covariance_corr = latent_correlation(covariance.latent.numpy(),
                                     read_conformations(OUT / "fading").coordinate)  # fmt: skip
print(
    f"covariance: |cos| with PPCA's first component {agreement:.3f}, "
    f"|rho| = {covariance_corr.best:.3f}"
)
assert agreement > 0.95 and covariance_corr.best > 0.95

# %% [markdown]
# ## A hyper-molecule: the map as a function of the coordinate (after Lederman & Singer)
# A linear model's maps along a component are `mu + c V_1`: a large motion comes out as one
# domain fading while its moved copy appears. Lederman and Singer's hyper-molecule instead
# lets the map depend on the conformation coordinate in any smooth way. The simplest such
# estimate uses the coordinate PPCA found: the map at a point `t` of the latent space is the
# reconstruction of all particles, each weighted by a Gaussian kernel of its distance to `t`
# (`kernel_regression_maps`; `cryomath variability --kernel-series`). On the large motion it
# follows the domain. Measured by how its change from the consensus correlates with the true
# change (the true map of the conformation at that point, minus the consensus), in the
# components' band: the kernel maps along the first coordinate beat the series along the
# first component (`mu + z_1 V_1`, what `component_1_frame_J.mrc` shows), and the three
# components together, used at the particles' own coordinates, do as well as the kernel:
# the linear model needs more components, not a different coordinate.

# %%
large_table = read_particles(OUT / "large_motion" / "particles.star")
t_true = read_conformations(OUT / "large_motion").coordinate
z = large.latent.numpy()
points = np.quantile(z[:, :1], [0.1, 0.3, 0.5, 0.7, 0.9], axis=0)
kernel = kernel_regression_maps(large_table, z[:, :1], points, bandwidth=0.25)


def true_map(t):
    """The trajectory's map at ``t`` (frames 0..6, linearly interpolated)."""
    s = min(t * 6, 5.999)
    a = int(s)
    return (a + 1 - s) * moved(a) + (s - a) * moved(a + 1)


band = torch.ones(n // 3 + 1, dtype=torch.float64)


def change_correlation(volume, truth_map):
    """The correlation, in the components' band, of two changes from the consensus."""
    a = weight_by_shell(volume - large.mean, band).flatten()
    b = weight_by_shell(truth_map - large.mean, band).flatten()
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


first_scores, linear_scores, kernel_scores = [], [], []
for p, point in enumerate(points[:, 0]):
    near = np.abs(z[:, 0] - point) < 0.25 * z[:, 0].std()
    truth_map = true_map(float(np.median(t_true[near])))
    coords = torch.from_numpy(z[near].mean(0))
    linear = large.mean + torch.einsum("k,kzyx->zyx", coords, large.components)
    first_scores.append(change_correlation(large.mean + coords[0] * large.components[0],
                                           truth_map))  # fmt: skip
    linear_scores.append(change_correlation(linear, truth_map))
    kernel_scores.append(change_correlation(kernel.maps[p], truth_map))
print("correlation with the true change, first component:", np.round(first_scores, 3))
print("correlation with the true change, three components:", np.round(linear_scores, 3))
print("correlation with the true change, kernel:", np.round(kernel_scores, 3))
fig, axes = plt.subplots(2, 5, figsize=(12, 5))
for p in range(5):
    coords = torch.from_numpy(z[np.abs(z[:, 0] - points[p, 0]) < 0.25 * z[:, 0].std()].mean(0))
    linear = large.mean + torch.einsum("k,kzyx->zyx", coords, large.components)
    axes[0, p].imshow(linear[:, :, :].sum(1).numpy(), cmap="gray", origin="lower")
    axes[1, p].imshow(kernel.maps[p].sum(1).numpy(), cmap="gray", origin="lower")
    axes[0, p].set_title(f"latent quantile {[10, 30, 50, 70, 90][p]} %", fontsize=8)
    for row in axes[:, p]:
        row.axis("off")
axes[0, 0].text(-2, n / 2, "linear, 3 components", rotation=90, va="center", ha="right")
axes[1, 0].text(-2, n / 2, "kernel", rotation=90, va="center", ha="right")
fig.savefig(OUT / "hyper_molecule.png", dpi=80, bbox_inches="tight")
plt.close(fig)
assert np.mean(kernel_scores) > np.mean(first_scores) + 0.05
assert abs(np.mean(kernel_scores) - np.mean(linear_scores)) < 0.1
