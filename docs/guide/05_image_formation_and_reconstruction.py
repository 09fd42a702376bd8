# %% [markdown]
# # The mathematics of image formation and reconstruction
#
# The CTF and its aliasing, the Fourier slice theorem, backprojection, the FSC, 2-D alignment
# by cross-correlation and detector noise, each computed with cryomath and checked against an
# independent result.

# %%
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cryomath import so3
from cryomath.atoms import map_from_model, read_atoms
from cryomath.ctf import CTF, compute_ctf, electron_wavelength_angstrom
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier import shift_2d
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.noise import expected_counts, shot_noise
from cryomath.projection import project_fourier, project_real_space
from cryomath.reconstruction import reconstruct
from cryomath.resolution import fourier_shell_correlation

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)
pixel = 1.5
volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), pixel, 5.0)
n = volume.shape[-1]

# %% [markdown]
# ## The CTF and its aliasing at a given pixel size and box
# The CTF phase `gamma(k) = -pi lambda df k^2 + pi/2 Cs lambda^3 k^4 + ...` advances by
# `2 pi lambda df k dk` between Fourier samples `dk = 1 / (box pixel)`. Beyond
# `k_alias = box pixel / (2 lambda df)` that is more than pi: the sampled CTF has fewer sign
# changes than the true one (its rings alias). Checked by counting zeros along kx.

# %%
defocus = 20000.0
one = torch.tensor([1.0], dtype=torch.float64)
ctf = CTF(defocus * one, defocus * one, 0 * one, 300 * one, 0 * one, 0.1 * one)  # Cs = 0
wavelength = float(electron_wavelength_angstrom(300.0))
k_alias = n * pixel / (2 * wavelength * defocus)
values = compute_ctf(ctf, (n, n), pixel, rfft=True)[0, 0]  # along kx, 0 .. Nyquist
k = torch.arange(len(values), dtype=torch.float64) / (n * pixel)
sampled_changes = (values[1:] * values[:-1] < 0).to(torch.int64)
# true zeros (Cs = 0): sin(pi lambda df k^2 + atan(Q0 / sqrt(1 - Q0^2))) = 0
offset = math.atan(0.1 / math.sqrt(1 - 0.01)) / math.pi
true_zeros = torch.floor(wavelength * defocus * k**2 + offset)
true_changes = true_zeros[1:] - true_zeros[:-1]
below = k[1:] < k_alias * 0.95
assert bool((sampled_changes[below] == true_changes[below]).all())
assert int(sampled_changes[~below].sum()) < int(true_changes[~below].sum())
print(
    f"box {n}, {pixel} A, defocus 2 um: rings alias beyond {k_alias:.3f} 1/A "
    f"(Nyquist {1 / (2 * pixel):.3f}); zeros counted exactly below it"
)

# %% [markdown]
# ## The Fourier slice theorem
# The 2-D transform of a projection is the central slice of the 3-D transform. Along the
# z axis it holds exactly for the discrete transforms (summing over z is the `kz = 0` plane);
# at any rotation the Fourier projector matches the real-space one (rotate, sum along z).

# %%
projection = volume.sum(0)  # along z, pose = identity
slice_of_3d = fft_nd(volume, 3, rfft=True)[0]  # the kz = 0 plane
assert torch.allclose(
    fft_nd(projection, 2, rfft=True), slice_of_3d, atol=1e-9 * float(slice_of_3d.abs().max())
)
rotations = so3.random_rotations(8, 3)
fourier, real = project_fourier(volume, rotations), project_real_space(volume, rotations)
cc = torch.nn.functional.cosine_similarity(
    (fourier - fourier.mean((-1, -2), keepdim=True)).flatten(1),
    (real - real.mean((-1, -2), keepdim=True)).flatten(1),
)
assert float(cc.min()) > 0.999
print(f"Fourier slice vs real-space projection: cc >= {float(cc.min()):.5f}")

# %% [markdown]
# ## Backprojection: reconstruction from projections
# Direct Fourier inversion (insert each image's transform as a central slice, divide by the
# sampling weights) of 3,000 noise-free projections at uniform poses gives back the map:
# FSC with the truth above 0.9 up to 0.8 of Nyquist.

# %%
poses = so3.random_rotations(3000, 4)
images = project_fourier(volume, poses)
rebuilt = reconstruct(images, poses, pixel, prior_weight=None)
curve = fourier_shell_correlation(rebuilt, volume, pixel)
nyquist = 1 / (2 * pixel)
inside = curve.spatial_frequency_per_angstrom <= 0.8 * nyquist
assert float(curve.fsc[inside].min()) > 0.9
print(f"reconstruction vs truth: FSC >= {float(curve.fsc[inside].min()):.3f} to 0.8 Nyquist")

# %% [markdown]
# ## The FSC of two noisy halves
# Half maps `V + N1` and `V + N2` with independent white noise of variance `s2` have, per
# shell, `FSC = S / (S + s2 n^3)` with `S` the shell's mean signal power (numpy's FFT scaling).

# %%
generator = torch.Generator().manual_seed(5)
sigma = float(volume.std()) * 2
half1 = volume + sigma * torch.randn(volume.shape, generator=generator, dtype=volume.dtype)
half2 = volume + sigma * torch.randn(volume.shape, generator=generator, dtype=volume.dtype)
measured = fourier_shell_correlation(half1, half2, pixel)
radius = fftfreq_grid(volume.shape, rfft=False).norm(dim=-1) * n
shell = torch.round(radius).long()
power = torch.fft.fftn(volume).abs() ** 2
signal = torch.zeros(int(shell.max()) + 1, dtype=power.dtype).index_add_(
    0, shell.flatten(), power.flatten()
)
counts = torch.zeros_like(signal).index_add_(0, shell.flatten(), torch.ones_like(power).flatten())
predicted = (signal / counts) / (signal / counts + sigma**2 * n**3)
low = slice(1, n // 2 - 2)
error = (measured.fsc[low] - predicted[low]).abs()
assert float(error.max()) < 0.12 and float(error.mean()) < 0.04
print(f"FSC of noisy halves vs S / (S + N): mean |difference| {float(error.mean()):.3f}")
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(measured.spatial_frequency_per_angstrom[low], measured.fsc[low], label="measured")
ax.plot(measured.spatial_frequency_per_angstrom[low], predicted[low], "--", label="S / (S + N)")
ax.set_xlabel("spatial frequency (1/A)")
ax.set_ylabel("FSC")
ax.legend()
fig.savefig(OUT / "fsc_noise.png", dpi=100)

# %% [markdown]
# ## 2-D alignment by cross-correlation
# The cross-correlation `F^-1[F(a) conj(F(b))]` peaks at the shift between two images (here
# 5 px right and 3 px down, under noise at SNR 0.5); a search over in-plane angles finds the
# rotation to within the angular step.

# %%
reference = project_fourier(volume, torch.eye(3, dtype=torch.float64)[None])[0]
moved = shift_2d(reference[None], torch.tensor([[5.0, -3.0]], dtype=torch.float64))[0]
noisy = moved + float(reference.std()) * 2**0.5 * torch.randn(
    moved.shape, generator=generator, dtype=moved.dtype
)
correlation = ifft_nd(fft_nd(noisy, 2) * fft_nd(reference, 2).conj(), (n, n))
peak = int(correlation.argmax())
dy, dx = peak // n - n // 2, peak % n - n // 2
assert (dx, dy) == (5, -3)
turned = project_fourier(
    volume, so3.matrix_about_axis(torch.deg2rad(torch.tensor([37.0], dtype=torch.float64)), "z")
)[0]
steps = torch.arange(0.0, 360.0, 2.0, dtype=torch.float64)
candidates = project_fourier(volume, so3.matrix_about_axis(torch.deg2rad(steps), "z"))
scores = (candidates * turned).sum((-1, -2))
best = float(steps[scores.argmax()])
assert abs(best - 37.0) <= 1.0
print(f"shift found: ({dx}, {dy}) px; in-plane angle found: {best:g} degrees (true 37)")

# %% [markdown]
# ## Detector (Poisson) noise
# Counts at a dose `D` (e/A^2) have mean and variance `N0 (1 + c)` per pixel,
# `N0 = D pixel^2`: checked over 2,000 realisations of one image.

# %%
contrast = 0.2 * reference / reference.abs().max()
counts = shot_noise(
    contrast.expand(2000, n, n), 10.0, pixel, generator=torch.Generator().manual_seed(6)
)
rate = expected_counts(contrast, 10.0, pixel)
mean_error = float(((counts.mean(0) - rate) / torch.sqrt(rate / 2000)).abs().mean())
variance_ratio = float((counts.var(0) / rate).mean())
assert mean_error < 1.0 and abs(variance_ratio - 1) < 0.01
print(
    f"Poisson: mean within {mean_error:.2f} standard errors, variance / mean = {variance_ratio:.4f}"
)
