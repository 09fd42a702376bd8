# %% [markdown]
# # Dose weighting and motion correction (after Grant & Grigorieff 2015; Zheng et al. 2017)
#
# A movie is many frames of low dose each. The beam moves the sample, fast at first, and every
# electron damages it, the fine details first. Two things follow. The frames must be aligned
# before they are summed (motion correction). And the late frames' high frequencies carry
# little but noise, so each frequency should weight the frames by how much signal they still
# hold (dose weighting). Here a simulated movie with a known drift (`simulate.movies`: the
# exposure filter, Poisson counts) is corrected with `cryomath.motion`.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cryomath.ctf import critical_exposure, exposure_filter
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.motion import align_frames, aligned_sum
from cryomath.simulate.movies import MovieSettings, simulate_movie, texture

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The exposure filter
# Grant & Grigorieff measured how fast each frequency fades:
# `q = exp(-N / (2 N_e(k)))` with the critical exposure `N_e = 0.245 k^-1.665 + 2.81` e/A^2
# (300 kV). An image summed without weighting is best at an exposure of `2.51 N_e`. Beyond
# that, the extra frames add more noise than signal at that frequency.

# %%
exposure = torch.linspace(0, 60, 200, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(4.5, 3))
for d in (8.0, 4.0, 3.0):
    ax.plot(exposure, exposure_filter(torch.tensor(1 / d), exposure), label=f"{d:g} A")
ax.set_xlabel("accumulated exposure (e/A^2)")
ax.set_ylabel("signal kept")
ax.legend(title="resolution")
fig.savefig(OUT / "exposure_filter.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print(f"critical exposure at 3 A: {float(critical_exposure(torch.tensor(1 / 3))):.2f} e/A^2")

# %% [markdown]
# ## A movie, its drift, and the corrected sum
# The field is 20 frames of 1.5 e/A^2 each (60 e/A^2 total is typical). Each frame in turn is
# aligned against the sum of the others (`align_frames`). The recovered track follows the true
# one within a fraction of a pixel, and the aligned, dose-weighted sum correlates better with
# the undamaged field than the plain sum does.

# %%
n = 256
field = texture(n, 0.3)
settings = MovieSettings(n_frames=20, dose_per_frame_e_per_a2=1.5, initial_speed_px_per_frame=1.5,
                         seed=2)  # fmt: skip
movie = simulate_movie(field, 1.0, settings)
truth = movie.shifts_px - movie.shifts_px.mean(0)
drift = align_frames(movie.frames)
error = float((drift - truth).norm(dim=1).pow(2).mean().sqrt())
fig, ax = plt.subplots(figsize=(4, 4))
ax.plot(truth[:, 0], truth[:, 1], "-o", ms=3, label="truth")
ax.plot(drift[:, 0], drift[:, 1], "-x", ms=4, label="found")
ax.set_xlabel("x (px)")
ax.set_ylabel("y (px)")
ax.legend()
fig.savefig(OUT / "drift.png", dpi=80, bbox_inches="tight")
plt.close(fig)


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


reference = ifft_nd(fft_nd(field, 2) * phase_ramp((n, n), movie.shifts_px.mean(0)), (n, n))
scores = {
    "plain sum": correlation(movie.frames.sum(0), reference),
    "aligned": correlation(aligned_sum(movie.frames, drift), reference),
    "aligned, dose-weighted": correlation(
        aligned_sum(movie.frames, drift, 1.0, movie.exposures_e_per_a2), reference
    ),
}
print(f"drift error (rms): {error:.2f} px; correlation with the field:", scores)
assert error < 0.33
assert scores["plain sum"] < scores["aligned"] < scores["aligned, dose-weighted"]

# %% [markdown]
# ## Particles that move on their own: Bayesian polishing
# The beam does not only shift the whole frame: the ice domes and tilts, and each particle
# follows its own smooth track. Zivanov, Nakane & Scheres (2019) fit every particle's track
# against its predicted image (the map projected at its pose, with its CTF), each frame's
# score the Gaussian log-likelihood of the shift, under a Gaussian-process prior: velocities
# are small (`s_vel`), correlated between neighbours (`exp(-distance / s_div)`) and change
# slowly (`s_acc`). Here a movie of 25 particles (`simulate.particle_movies`: a drift plus a
# local motion of 2 px rms, counts at 2 e/A^2 per frame) is aligned globally, then each
# particle's track is fitted with RELION's defaults (`motion.fit_local_tracks`). What global
# alignment cannot see, the local fit recovers: the tracks' error falls from 0.58 to 0.14 px.

# %%
from cryomath.atoms import map_from_model, read_atoms  # noqa: E402
from cryomath.ctf import CTF  # noqa: E402
from cryomath.demo import BUNDLED_MODEL  # noqa: E402
from cryomath.fourier.crop import crop_or_pad  # noqa: E402
from cryomath.imaging import ParticleBatch, predict_images  # noqa: E402
from cryomath.motion import extract_boxes, fit_local_tracks  # noqa: E402
from cryomath.projection import prepare_volume  # noqa: E402
from cryomath.simulate.particle_movies import simulate_particle_movie  # noqa: E402
from cryomath.so3.random import random_rotations  # noqa: E402

pixel, box, size = 1.5, 64, 384
volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), pixel, None, margin_angstrom=12.0)
spectrum = prepare_volume(crop_or_pad(volume, (box,) * 3), voxel_size_angstrom=pixel)
centres = torch.arange(48, size - 47, 72)
positions = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
g = torch.Generator().manual_seed(0)
defocus = 10000 + 10000 * torch.rand(len(positions), generator=g, dtype=torch.float64)
batch = ParticleBatch.from_tensors(
    rotations=random_rotations(len(positions), generator=g, dtype=torch.float64),
    pixel_size_angstrom=pixel, ctf=CTF(defocus, defocus, 0.0, 300.0, 2.7, 0.1), image_size=box,
)  # fmt: skip
particles = predict_images(spectrum, batch)
particles = particles / particles.std() * 0.1
settings = MovieSettings(n_frames=16, dose_per_frame_e_per_a2=2.0, seed=3)
movie = simulate_particle_movie(particles, positions, (size, size), pixel, settings, 2.0)
drift = align_frames(movie.frames)
boxes = -extract_boxes(movie.frames, positions, box, drift)  # movies record protein dark
fit = fit_local_tracks(boxes, particles, positions, pixel, movie.exposures_e_per_a2)
truth = movie.tracks_px - drift  # where each particle sits in its aligned boxes


def shape_error(tracks: torch.Tensor) -> float:
    error = tracks - truth
    return float((error - error.mean(1, keepdim=True)).norm(dim=-1).pow(2).mean().sqrt())


fig, ax = plt.subplots(figsize=(4.5, 4.5))
for p in range(len(positions)):
    gain = 15  # the local motion, magnified
    true_track = positions[p] + gain * (truth[p] - truth[p, 0])
    found_track = positions[p] + gain * (fit.tracks_px[p] - fit.tracks_px[p, 0])
    ax.plot(true_track[:, 0], true_track[:, 1], "-", color="0.6", lw=2)
    ax.plot(found_track[:, 0], found_track[:, 1], "-", color="C1", lw=1)
ax.invert_yaxis()
ax.set_title("local motion x15: truth (grey), fitted (orange)")
fig.savefig(OUT / "particle_tracks.png", dpi=80, bbox_inches="tight")
plt.close(fig)
errors = {"global alignment only": shape_error(torch.zeros_like(truth)),
          "Bayesian polishing": shape_error(fit.tracks_px)}  # fmt: skip
print("track error (rms of each track's shape, px):", errors)
assert errors["Bayesian polishing"] < 0.35 * errors["global alignment only"]
