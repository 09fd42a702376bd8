# %% [markdown]
# # The Ewald sphere (after Russo & Henderson, 2018)
#
# The projection theorem says a particle's image samples its 3-D transform on a central plane.
# That holds for a thin object. Electrons of wavelength `lambda` sample it on a sphere of radius
# `1 / lambda`, which leaves the plane by `lambda k^2 / 2` at spatial frequency `k`. Across a
# particle of diameter `D` that is a phase of `pi lambda D k^2`. It reaches `pi / 2` at
# `d = sqrt(2 lambda D)`, DeRosier's (2000) limit for a flat-slice reconstruction. The image
# holds two single side-bands, one on each of two spheres of opposite curvature
# (`cryomath.ctf.ewald`):
# `X(k) = H V(A^T (k, +c k^2)) + conj(H) V(A^T (k, -c k^2))`, with `H = (CTF - i E cos gamma) / 2`
# and `c = lambda / (2 pixel)`. Their sum on a flat slice is the familiar `CTF V`. The
# correction inserts `conj(H) X` and `H X` on the two spheres (`imaging.Ewald`,
# `cryomath reconstruct --ewald`), as `relion_reconstruct --ewald` does.

# %%
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cryomath import so3
from cryomath.ctf import CTF, compute_ctf, electron_wavelength_angstrom, single_sideband_ctf
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier import fftfreq_grid
from cryomath.imaging import Ewald, ParticleBatch, predict_images, predict_spectra
from cryomath.noise import add_white_noise
from cryomath.pipelines import read_volume
from cryomath.projection import prepare_volume
from cryomath.reconstruction import reconstruct
from cryomath.resolution import flatten_spectrum, fourier_shell_correlation, resolution_angstrom

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## When the sphere matters
# DeRosier's limit `d = sqrt(2 lambda D)` for a few particle sizes and voltages. At 300 kV a
# 500-Angstrom virus meets it at 4.4 Angstrom. A lower voltage or a larger particle meets it
# sooner.

# %%
for kv in (300.0, 100.0):
    lam = float(electron_wavelength_angstrom(kv))
    limits = {d: math.sqrt(2 * lam * d) for d in (100.0, 500.0, 1000.0)}
    print(f"{kv:g} kV: lambda {lam:.4f} A; limit per diameter (A):",
          {d: round(v, 2) for d, v in limits.items()})  # fmt: skip
    # the phase across the particle at that limit is pi / 2
    assert all(abs(math.pi * lam * d / v**2 - math.pi / 2) < 1e-12 for d, v in limits.items())
assert abs(math.sqrt(2 * float(electron_wavelength_angstrom(300.0)) * 500) - 4.44) < 0.01

# %% [markdown]
# ## The two side-bands
# `2 |H|` is the envelope alone: the side-bands carry signal at the CTF's zeros, where a flat
# slice has none. Their real parts add up to the CTF.

# %%
one = torch.ones(1, dtype=torch.float64)
ctf = CTF(8000 * one, 8000 * one, 0 * one, 300 * one, 2.7 * one, 0.1 * one, bfactor_angstrom2=50)
h = single_sideband_ctf(ctf, (128, 128), 1.0)[0, 0]
flat = compute_ctf(ctf, (128, 128), 1.0)[0, 0]
k = torch.arange(65, dtype=torch.float64) / 128
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(k, flat, label="CTF")
ax.plot(k, 2 * h.imag, label="-E cos(gamma)", alpha=0.7)
ax.plot(k, 2 * h.abs(), "k--", label="2 |H|")
ax.set_xlabel("spatial frequency (1/A)")
ax.legend(fontsize=7)
fig.savefig(OUT / "sidebands.png", dpi=80, bbox_inches="tight")
plt.close(fig)
assert float((2 * h.real - flat).abs().max()) < 1e-12
assert float((2 * h.abs() - torch.exp(-50 * k**2 / 4)).abs().max()) < 1e-12

# %% [markdown]
# ## A flat slice loses resolution; the correction gives it back
# A test particle where the effect is strong at a small box (as in `bench/ewald.py`): the
# bundled N-domain model rendered in a 64 box, its spectrum flattened, and its voxels called
# 0.25 Angstrom, imaged at 100 kV. `lambda D / d^2` is 1.4 at Nyquist, as for a 700-Angstrom
# particle at 3 Angstrom and 300 kV. 1,000 images at SNR 0.01 are reconstructed four ways.
# The first is the same images without curvature (the reference). The others are the curved
# images reconstructed on a flat slice, with the correction, and with the curvature reversed.

# %%
pixel, count = 0.25, 1000
volume, _ = read_volume(BUNDLED_MODEL, 64, 1.5)  # rendered at 1.5 A, then called 0.25 A
truth = flatten_spectrum(volume)
spectrum = prepare_volume(truth, 2.0, voxel_size_angstrom=pixel)
g = torch.Generator().manual_seed(0)
rotations = so3.random_rotations(count, 1)
defocus = 5000 + 10000 * torch.rand(count, generator=g, dtype=torch.float64)
ones = torch.ones(count, dtype=torch.float64)
ctfs = CTF(defocus, defocus, 0 * ones, 100 * ones, 2.7 * ones, 0.1 * ones)
batch = ParticleBatch.from_tensors(None, rotations, pixel, None, ctfs, image_size=64)


def noisy(images):
    return add_white_noise(images, 0.01, generator=torch.Generator().manual_seed(1))


curved = noisy(predict_images(spectrum, batch, ewald=Ewald()))
planar = noisy(predict_images(spectrum, batch))
cases = {
    "no curvature in the data": (planar, None),
    "flat slice": (curved, None),
    "Ewald correction": (curved, Ewald(1, 14.4)),
    "reversed curvature": (curved, Ewald(-1, 14.4)),
}
fig, ax = plt.subplots(figsize=(5, 3.2))
found = {}
for name, (images, ewald) in cases.items():
    volume = reconstruct(images, rotations, pixel, ctf=ctfs, ewald=ewald, prior_weight=1e-3)
    curve = fourier_shell_correlation(volume, truth, pixel)
    found[name] = resolution_angstrom(curve, 0.5)
    ax.plot(curve.spatial_frequency_per_angstrom, curve.fsc, label=f"{name}: {found[name]:.2f} A")
ax.axhline(0.5, color="grey", lw=0.5)
ax.set_xlabel("spatial frequency (1/A)")
ax.set_ylabel("FSC with the truth")
ax.legend(fontsize=7)
fig.savefig(OUT / "ewald_fsc.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print({name: round(value, 3) for name, value in found.items()})
assert found["flat slice"] > 1.1 * found["no curvature in the data"]
assert found["Ewald correction"] < 1.03 * found["no curvature in the data"]
assert found["reversed curvature"] > found["flat slice"]

# %% [markdown]
# ## The hand
# A map and its mirror image, seen at mirrored poses (`A' = M A M`, `M` the mirror of z), give
# the same flat projections: the hand of a map cannot be known from central slices. On the
# sphere they differ. The mirror's curved images are the original's with the curvature
# reversed. So once the microscope's curvature is known (RELION's sign: the test suite proves
# ours is the same against `relion_reconstruct --ewald`'s maps), the curvature that
# reconstructs best, the larger gain at high resolution, names the absolute hand.

# %%
mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
core = truth.clone()
core[0] = 0  # the one plane whose mirror image (z -> -z about voxel n // 2) is outside the box
original = prepare_volume(core, 2.0, voxel_size_angstrom=pixel)
twin = prepare_volume(torch.roll(torch.flip(core, [0]), 1, 0), 2.0, voxel_size_angstrom=pixel)
few = ParticleBatch.from_tensors(None, rotations[:8], pixel, None, ctfs.subset(slice(0, 8)),
                                 image_size=64)  # fmt: skip
flipped = mirror @ rotations[:8] @ mirror
# compared inside 0.45 cycles/pixel: the padded grid's Nyquist plane has no mirror image
inner = fftfreq_grid((64, 64), rfft=True, dtype=torch.float64).square().sum(-1) < 0.45**2


def largest(difference):
    return float(difference[..., inner].abs().max()) / scale


scale = float(predict_spectra(original, few).abs().max())
same_flat = largest(predict_spectra(twin, few, flipped) - predict_spectra(original, few))
same_curved = largest(predict_spectra(twin, few, flipped, ewald=Ewald())
                      - predict_spectra(original, few, ewald=Ewald(-1)))  # fmt: skip
different = largest(predict_spectra(twin, few, flipped, ewald=Ewald())
                    - predict_spectra(original, few, ewald=Ewald()))  # fmt: skip
print(
    f"largest difference: flat {same_flat:.1e}, mirror against reversed curvature "
    f"{same_curved:.1e}, mirror against the same curvature {different:.2f}"
)
assert same_flat < 1e-6 and same_curved < 1e-6 and different > 0.01
