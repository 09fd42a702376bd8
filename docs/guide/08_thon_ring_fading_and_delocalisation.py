# %% [markdown]
# # Thon-ring fading and delocalisation (after Glaeser et al., 2021)
#
# The CTF's phase `gamma(k)` moves the signal of each spatial frequency away from where the
# particle is, by its gradient: `R(k) = |lambda df k - Cs lambda^3 k^3|` (stationary phase;
# `cryomath.ctf.delocalisation`). At 4 micrometres of defocus the 3-Angstrom signal of a
# particle lands 255 Angstrom away. The image of a particle is a box cut out of a micrograph.
# The high-resolution signal that the CTF moved beyond that box is gone, so its Thon rings fade.
# Glaeser et al. found this, not the source's coherence, to be the main cause of the fading.
# The cure is a bigger box.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cryomath import so3
from cryomath.ctf import CTF, box_size_for_resolution, compute_ctf, delocalisation_radius_angstrom
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier import crop_or_pad
from cryomath.fourier.shells import shell_index
from cryomath.imaging import ParticleBatch, predict_images
from cryomath.pipelines import read_volume
from cryomath.projection import prepare_volume
from cryomath.simulate.delocalisation import ctf_over_field, field_size_px

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## How far the signal moves
# `R(k)` grows linearly with defocus and frequency (the `Cs` term matters only at high
# resolution). A particle of diameter `D` keeps its signal up to `k` in a box of
# `D + 2 R(k)` (`ctf.box_size_for_resolution` uses Glaeser's bound, which holds for either sign
# of the defocus).

# %%
k = torch.linspace(0.005, 1 / 3, 200, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(4.5, 3))
for df in (10000.0, 20000.0, 40000.0):
    ax.plot(k, delocalisation_radius_angstrom(k, df), label=f"{df / 1e4:g} um")
ax.set_xlabel("spatial frequency (1/A)")
ax.set_ylabel("R(k) (A)")
ax.legend(title="defocus")
fig.savefig(OUT / "delocalisation.png", dpi=80, bbox_inches="tight")
plt.close(fig)
reach = float(delocalisation_radius_angstrom(1 / 3, 40000.0))
print(f"R at 3 A, 4 um underfocus: {reach:.0f} A")
assert 250 < reach < 270

# %% [markdown]
# ## Fading with defocus in a fixed box, gone in a bigger one
# Noise-free projections of the bundled model (1.5 A per pixel) get their CTF twice. The first
# time it acts on the box itself, periodically, so nothing is lost. The second time it acts on
# the micrograph around the particle, and the box is cut out of it (`ctf_over_field`, what
# `simulate --delocalisation` does). The ratio of their power per shell is what the box keeps.
# In a 64-pixel box the high frequencies fade as the defocus grows. In the box that
# `box_size_for_resolution` asks for (particle diameter 60 A, 3 A, 4 um underfocus), they stay.

# %%
pixel, count = 1.5, 16
volume, _ = read_volume(BUNDLED_MODEL, 64, pixel)
spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=pixel)
views = ParticleBatch.from_tensors(None, so3.random_rotations(count, 0), pixel, image_size=64)
projections = predict_images(spectrum, views)  # no CTF


def kept_per_shell(box: int, defocus: float) -> torch.Tensor:
    """Power per shell with the CTF over the micrograph over power with it on the box."""
    one = torch.ones(count, dtype=torch.float64)
    ctf = CTF(defocus * one, defocus * one, 0 * one, 300 * one, 2.7 * one, 0.1 * one)
    images = crop_or_pad(projections, (box, box))
    field = field_size_px(box, pixel, defocus, 2.7, 300.0)
    cut = ctf_over_field(images, ctf, pixel, field)
    periodic = torch.fft.irfft2(torch.fft.rfft2(images) * compute_ctf(ctf, (box, box), pixel),
                                s=(box, box))  # fmt: skip
    shells = shell_index((box, box)).flatten()
    power = [torch.bincount(shells, torch.fft.rfft2(x).abs().pow(2).sum(0).flatten(),
                            box // 2 + 1) for x in (cut, periodic)]  # fmt: skip
    return (power[0] / power[1])[: box // 2]


big = box_size_for_resolution(3.0, 60.0, pixel, 40000.0)
fig, ax = plt.subplots(figsize=(4.5, 3))
kept = {}
for box, df in ((64, 5000.0), (64, 10000.0), (64, 20000.0), (big, 40000.0)):
    curve = kept_per_shell(box, df)
    kept[(box, df)] = float(curve[int(0.8 * len(curve)) :].mean())  # the outer fifth
    frequency = torch.arange(len(curve)) / (box * pixel)
    ax.plot(frequency, curve, label=f"box {box}, {df / 1e4:g} um")
ax.set_xlabel("spatial frequency (1/A)")
ax.set_ylabel("power kept")
ax.legend(fontsize=7)
fig.savefig(OUT / "fading.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print(f"box for 3 A at 4 um: {big} px; power kept in the outer fifth of the shells:", kept)
assert kept[(64, 20000.0)] < kept[(64, 10000.0)] < kept[(64, 5000.0)]
assert kept[(64, 20000.0)] < 0.2 and kept[(big, 40000.0)] > 0.95
