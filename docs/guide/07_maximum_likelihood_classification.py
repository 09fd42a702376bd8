# %% [markdown]
# # Maximum-likelihood classification: from a 1-D toy to RELION's rules
#
# Expectation-maximisation on a toy problem first (1-D signals, each a circularly shifted copy
# of one of two templates plus noise), then the rules RELION adds for real images, each shown
# with cryomath's engine (`cryomath.inference`): the noise spectrum, the band searched, and
# the Cramér-Rao bound that says how well any of it can do.
# (`cryomath class2d`, `class3d` and `refine` run the whole engine: docs/cli.md.)

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.demo import BUNDLED_MODEL
from cryomath.imaging import (
    ParticleBatch,
    estimate_noise_from_background,
    pose_fisher_information,
    predict_images,
    rotation_error_bound_degrees,
)
from cryomath.inference import gaussian_pose_scores
from cryomath.inference.sampling import global_orientations
from cryomath.pipelines import read_volume
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## EM on a toy: two templates, unknown shifts and classes
# Each signal `x_i = T_{z_i}` shifted by `s_i` plus white noise of sd `sigma`. The E-step gives
# every (class, shift) its posterior weight `w ∝ pi_k exp(-|x - shift(T_k)|^2 / 2 sigma^2)`; the
# M-step averages the signals un-shifted by each hypothesis with those weights, and the class
# fractions are the mean weights. Started from two random signals, the templates come back (up
# to a circular shift and the order of the classes).

# %%
m, count, sigma = 48, 200, 1.0
grid = np.arange(m)
truth = np.stack([np.exp(-0.5 * ((grid - 20) / 3) ** 2) * 3, np.where(abs(grid - 32) < 5, 2.0, 0)])
label = rng.integers(0, 2, count)
shift = rng.integers(0, m, count)
signals = np.stack([np.roll(truth[z], s) for z, s in zip(label, shift, strict=True)])
signals += sigma * rng.standard_normal(signals.shape)
templates, fractions = signals[rng.choice(count, 2, replace=False)].copy(), np.full(2, 0.5)
for _ in range(20):
    shifted = np.stack([[np.roll(t, s) for s in range(m)] for t in templates])  # (K, S, m)
    log_w = -((signals[:, None, None] - shifted[None]) ** 2).sum(-1) / (2 * sigma**2)
    log_w += np.log(fractions)[None, :, None]
    w = np.exp(log_w - log_w.max((1, 2), keepdims=True))
    w /= w.sum((1, 2), keepdims=True)  # (N, K, S)
    for k in range(2):
        unshifted = np.stack([np.roll(signals, -s, 1) for s in range(m)], 1)  # (N, S, m)
        templates[k] = (w[:, k, :, None] * unshifted).sum((0, 1)) / w[:, k].sum()
    fractions = w.sum((0, 2)) / count


def best_correlation(a, b):
    return max(np.corrcoef(np.roll(a, s), b)[0, 1] for s in range(m))


match = max(
    min(best_correlation(templates[0], truth[0]), best_correlation(templates[1], truth[1])),
    min(best_correlation(templates[0], truth[1]), best_correlation(templates[1], truth[0])),
)
print(f"templates recovered: correlation {match:.3f}, fractions {np.round(fractions, 2)}")
assert match > 0.95
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for k in range(2):
    axes[k].plot(truth[k], label="truth")
    axes[k].plot(templates[k], label="EM")
    axes[k].legend()
fig.savefig(OUT / "toy_em.png", dpi=80)
plt.close(fig)

# %% [markdown]
# ## RELION's first rule: the noise has a spectrum, estimated per shell
# Real noise is not white, and its power decides how much each frequency counts in the
# likelihood. Before any model exists, RELION (and `imaging.estimate_noise_from_background`)
# measures it in the pixels outside the particle. Checked on images with known white noise:
# `sigma2 = N^2 v / 2` per rfft sample for variance `v` per pixel.

# %%
n, pixel = 48, 2.0
volume, _ = read_volume(BUNDLED_MODEL, n, pixel)
count = 150
poses = so3.random_rotations(count, 1)
defocus = torch.full((count,), 15000.0, dtype=torch.float64)
ctf = CTF(defocus, defocus, torch.tensor(0.0), torch.tensor(300.0), torch.tensor(2.7),
          torch.tensor(0.1))  # fmt: skip
batch = ParticleBatch.from_tensors(None, poses, pixel, ctf=ctf, image_size=n)
spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=pixel)
clean = predict_images(spectrum, batch)
variance = float(clean.var() / 0.05)  # SNR 0.05 over the box
g = torch.Generator().manual_seed(2)
images = clean + variance**0.5 * torch.randn(clean.shape, generator=g, dtype=torch.float64)
batch = ParticleBatch.from_tensors(images, poses, pixel, ctf=ctf)
noise = estimate_noise_from_background([batch], 0.45 * n)
expected = n * n * variance / 2
ratio = noise.sigma2[0, 2 : n // 2] / expected
print(f"background estimate / truth, shells 2..{n // 2 - 1}: {float(ratio.mean()):.3f}")
assert abs(float(ratio.mean()) - 1) < 0.05

# %% [markdown]
# ## The band searched: every shell with signal
# RELION scores a coarse grid only up to the resolution its step resolves (`coarse_size`);
# for a single-pass search at low SNR that throws away the signal that tells poses apart.
# Here 150 particles at SNR 0.05 are scored against the true map on a 15-degree grid with
# the shells up to 6, 12 or 23: the share put more than 30 degrees from the truth falls as
# shells are added. (cryomath scores every shell with signal, and uses the coarse band only to
# choose the orientations its adaptive pass refines.)

# %%
grid_poses = global_orientations(2, torch.eye(3, dtype=torch.float64)[None])
projections = extract_central_slices_rfft_3d(spectrum, grid_poses)
wrong = {}
for shell in (6, 12, 23):
    scores = gaussian_pose_scores(batch, projections, torch.zeros(1, 2, dtype=torch.float64),
                                  noise, shell)[:, 0]  # fmt: skip
    error = torch.rad2deg(so3.geodesic_distance(grid_poses[scores.argmax(1)], poses))
    wrong[shell] = float((error > 30).double().mean())
print("share more than 30 degrees off, by the last shell scored:", wrong)
assert wrong[23] < wrong[6]
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar([str(s) for s in wrong], [100 * v for v in wrong.values()])
ax.set_xlabel("last shell scored")
ax.set_ylabel("% more than 30 deg off")
fig.savefig(OUT / "band.png", dpi=80, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# ## How well a pose can be known: the Cramér-Rao bound
# The Fisher information of an image's pose (`imaging.pose_fisher_information`: how fast the
# prediction changes with rotation and shift, weighted by `1 / sigma^2` per shell) bounds the
# error of any unbiased estimate: its covariance is at least the inverse. For these particles
# and the true map the bound is a few degrees, and most of the information is in the high
# shells: a search that scores only the low ones cannot pin a pose down, whatever its grid.

# %%
bounds = {}
for shell in (6, 12, 23):
    fisher = pose_fisher_information(spectrum, batch, noise, max_shell=shell)
    bounds[shell] = float(rotation_error_bound_degrees(fisher).median())
print("median rms rotation bound (degrees), by the last shell:", bounds)
assert bounds[23] < bounds[12] < bounds[6]
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar([str(s) for s in bounds], list(bounds.values()))
ax.set_xlabel("last shell counted")
ax.set_ylabel("rotation bound (deg, rms)")
fig.savefig(OUT / "bound.png", dpi=80, bbox_inches="tight")
plt.close(fig)
