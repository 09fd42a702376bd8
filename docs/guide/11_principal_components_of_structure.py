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
# as the motion grows.

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
from cryomath.heterogeneity import fit_principal_components, latent_correlation
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.io import read_particles
from cryomath.pipelines import read_conformations, read_volume, simulate_dataset
from cryomath.reconstruction import accumulate_halves, maps_from_halves
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
