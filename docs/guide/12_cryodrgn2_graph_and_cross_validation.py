# %% [markdown]
# # CryoDRGN2: its computational graph, and cross-validation (after Zhong et al., 2021)
#
# CryoDRGN2 builds a map from images alone by alternating two steps. A pose search, with no
# gradient: each image against projections of the current map over SO(3) x shifts,
# hierarchically (`cryomath.inference.hierarchical`). Then gradient steps on the decoder, a
# coordinate network `V(k)` of 3-D frequency, with the images held at the poses found.
# cryomath runs the same loop as `cryomath abinitio --engine hps --representation neural`
# (`inference.neural_volume`). This page draws the loop's graph from the code itself, then
# answers the study group's question "How could cross-validation be incorporated into
# CryoDRGN?" with a measured experiment.

# %%
import os
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from cryomath.demo import BUNDLED_MODEL
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.inference.hierarchical import HierarchicalSearch, hierarchical_pose_search
from cryomath.inference.neural_volume import NeuralVolume
from cryomath.io import read_particles
from cryomath.pipelines import read_volume, simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.resolution import fourier_shell_correlation, resolution_angstrom
from cryomath.simulate import SimulationSettings

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)
n, pixel = 24, 4.0
truth, _ = read_volume(BUNDLED_MODEL, n, pixel)
truth = truth.double()


def simulate(volume, name, count, seed):
    """``count`` particles of ``volume`` (CTF, SNR 1, offsets of 1 px sd): their table."""
    settings = SimulationSettings(n_particles=count, pixel_size_angstrom=pixel, snr=1.0,
                                  seed=seed, shift_sigma_angstrom=pixel)  # fmt: skip
    simulate_dataset(volume[None], OUT / name, settings, force=True)
    return read_particles(OUT / name / "particles.star")


table = simulate(truth, "in_distribution", 360, seed=1)
noise = estimate_noise_from_background(iter_batches(table, 360, None, torch.float64), 0.45 * n)
band = n // 2 - 1

# %% [markdown]
# ## The graph, from the code path
# One step of the loop on 8 images. The pose search takes the images and the map rendered
# from the field, and returns poses: a discrete search, so nothing upstream of the poses gets
# a gradient. The decoder's loss is then built at those poses, and autograd records every
# operation from the network's weights to the loss. The figure below is that record
# (`loss.grad_fn`, walked from the loss back to the weights), with the pose search drawn in
# front of it.

# %%
batch = next(iter(iter_batches(table, 8, None, torch.float64)))
scale = float(batch.spectra.abs().pow(2).mean().sqrt())
field = NeuralVolume(n, pixel, scale, width=32, depth=2, seed=0, dtype=torch.float64)
rendered = prepare_volume(field.volume(band).clamp(min=0), 2.0, voxel_size_angstrom=pixel)
search = HierarchicalSearch(base_order=1, levels=2, keep=4, offset_range_px=2.0,
                            offset_step_px=1.0, base_shell=3, final_shell=6)  # fmt: skip
found = hierarchical_pose_search(replace(batch, rotations=None, shifts_px=None), rendered,
                                 noise, search)  # fmt: skip
at_poses = replace(batch, rotations=found.rotations, shifts_px=found.shifts_px)
loss = field.negative_log_likelihood(at_poses, noise, 6).mean()


def autograd_nodes(root):
    """Every node of the graph behind ``root`` with its depth (the longest path to it)."""
    depth, edges, stack = {root: 0}, [], [root]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            edges.append((node, child))
            if depth.get(child, -1) < depth[node] + 1:
                depth[child] = depth[node] + 1
                stack.append(child)
    return depth, edges


depth, edges = autograd_nodes(loss.grad_fn)


def label(node):
    name = type(node).__name__.removesuffix("Backward0")
    return "weights" if name == "AccumulateGrad" else name


names = [label(node) for node in depth]
print(f"{len(depth)} autograd nodes, {names.count('weights')} weight tensors; operations: "
      f"{sorted(set(names) - {'weights'})}")  # fmt: skip
# three linear layers (Addmm) and their weights and biases. The Fourier features sin and cos
# of 2 pi f k are not in it: k comes from the poses, which the search fixed, so no gradient
# flows to them (cryoDRGN2's poses are not refined by gradient either)
assert names.count("Addmm") == 3 and names.count("weights") == 6 and "Sin" not in names
assert not found.rotations.requires_grad and loss.requires_grad

columns: dict[int, list] = {}
for node, d in depth.items():
    columns.setdefault(d, []).append(node)
last, tallest = max(columns), max(len(c) for c in columns.values())
where = {}  # weights on the left, the loss on the right, 1.4 units per column
for d, nodes in columns.items():
    for i, node in enumerate(nodes):
        where[node] = (1.4 * (last - d) + 4.3, i - (len(nodes) - 1) / 2)
fig, ax = plt.subplots(figsize=(18, 1.2 + 0.6 * tallest))
for parent, child in edges:
    ax.annotate("", where[parent], where[child], arrowprops={"arrowstyle": "->", "color": "0.6"})
for node, (x, y) in where.items():
    colour = "lightyellow" if label(node) == "weights" else "white"
    ax.text(x, y, label(node).replace("Backward1", ""), ha="center", va="center", fontsize=7,
            bbox={"boxstyle": "round", "fc": colour})  # fmt: skip
inputs = ((0, "images X, CTF C"), (1.7, "pose search (HPS,\nno gradient) -> R, t\n-> k, and "
          "the features\nsin, cos(2 pi f k)"))  # fmt: skip
for x, text in inputs:
    ax.text(x, 0, text, ha="center", va="center", fontsize=7,
            bbox={"boxstyle": "round", "fc": "lightblue"})  # fmt: skip
ax.annotate("", (1.0, 0), (0.65, 0), arrowprops={"arrowstyle": "->"})
ax.annotate("", (3.9, 0), (2.75, 0), arrowprops={"arrowstyle": "->"})
ax.text(1.4 * last + 4.3, -tallest / 2 - 0.3, "loss: 1/2 sum w |X - C V(k)|^2, k = kx R[0] + "
        "ky R[1]", fontsize=8, ha="right")  # fmt: skip
ax.set_xlim(-0.8, 1.4 * last + 5.0)
ax.set_ylim(-tallest / 2 - 0.8, tallest / 2 + 0.5)
ax.axis("off")
ax.set_title("One CryoDRGN2 step in cryomath: the pose search, then the decoder's autograd "
             "graph, from its weights (yellow) to the loss (right)", fontsize=10)  # fmt: skip
fig.savefig(OUT / "cryodrgn2_graph.png", dpi=80, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# ## Cross-validation: two half-sets and a held-out third
# A decoder trained on all particles can fit their noise, and nothing in its loss says when.
# The gold standard of RELION and cryoSPARC applies as it is: split the particles, train one
# decoder per half (here at the known poses, so the experiment isolates the decoder), and
# compare the two maps by FSC. Their correlation is the signal both halves found; the noise
# each fitted is independent and drops out. A third part of the particles, never trained on,
# measures the held-out likelihood: per image, `1/2 sum w |X - C V(k)|^2` has mean half the
# band's sample count when the model explains the image, and the gap between the training and
# held-out values is the overfitting.

# %%
parts = np.array_split(np.random.default_rng(0).permutation(table.n), 3)


def batches(rows, tab=table):
    return list(iter_batches(tab, 80, None, torch.float64, rows=np.sort(rows)))


def train(rows, seed):
    chunks = batches(rows)
    volume = NeuralVolume(n, pixel, scale, learning_rate=3e-3, seed=seed, dtype=torch.float64)
    volume.fit_images(chunks, noise, band, 20)
    return volume


def mean_nll(volume, chunks):
    with torch.no_grad():
        return float(torch.cat([volume.negative_log_likelihood(b, noise, band)
                                for b in chunks]).mean())  # fmt: skip


half_a, half_b = train(parts[0], 1), train(parts[1], 2)
map_a, map_b = half_a.volume(band), half_b.volume(band)
between = fourier_shell_correlation(map_a, map_b, pixel)
against_truth = fourier_shell_correlation((map_a + map_b) / 2, truth, pixel)
gold = resolution_angstrom(between, 0.143)
print(f"FSC between the halves: 0.143 at {gold:.1f} A; the average against the truth: 0.5 at "
      f"{resolution_angstrom(against_truth, 0.5):.1f} A")  # fmt: skip
held_out = batches(parts[2])
trained, tested = mean_nll(half_a, batches(parts[0])), mean_nll(half_a, held_out)
k = np.fft.fftfreq(n)
in_band = np.rint(np.hypot(*np.meshgrid(k, k)) * n)
expected = 0.5 * float(((in_band >= 1) & (in_band <= band)).sum())
print(f"mean NLL per image: trained on {trained:.1f}, held out {tested:.1f} "
      f"(gap {100 * (tested / trained - 1):.1f} %); a perfect model: {expected:.1f}")  # fmt: skip
# two halves of 120 images at SNR 1, box 24 at 4 A: they agree up to the band's edge (shell
# 11, 8.7 A; the fields are zero beyond it), where the truth's FSC still stands at 0.43
assert 8.0 < gold < 16.0
assert abs(trained / expected - 1) < 0.15 and tested > trained  # measured 229.8, 245.4, 210.0

# %% [markdown]
# ## Out of distribution, measured
# The held-out likelihood turns "does this image belong to the model?" into a number. Three
# kinds of image the decoder never saw, each 120 images: an unseen conformation (the upper
# half of the domain moved by 3 voxels, 12 Angstrom, imaged as the others), and the held-out
# images themselves with wrong metadata: every defocus 3,000 Angstrom off, or a pixel size of
# 4.4 Angstrom instead of 4.0. For each, the excess of its mean NLL over the held-out
# images', in units of the standard error of that held-out mean. (Images of a molecule
# simulated at another pixel size would carry less signal for the same SNR, and so less
# noise: their NLL falls, a confound this design avoids.)

# %%
upper = (torch.arange(n)[:, None, None] >= n // 2).double()
moved = truth * (1 - upper) + torch.roll(truth * upper, 3, -1)
unseen = batches(np.arange(120), simulate(moved, "unseen_conformation", 120, seed=5))
wrong_ctf = [replace(b, ctf=replace(b.ctf, defocus_u_angstrom=b.ctf.defocus_u_angstrom + 3000,
                                    defocus_v_angstrom=b.ctf.defocus_v_angstrom + 3000))
             for b in held_out]  # fmt: skip
other_pixel = [replace(b, pixel_size_angstrom=4.4) for b in held_out]
with torch.no_grad():
    reference = torch.cat([half_a.negative_log_likelihood(b, noise, band) for b in held_out])
error = float(reference.std() / len(reference) ** 0.5)
excess = {name: (mean_nll(half_a, chunks) - float(reference.mean())) / error
          for name, chunks in (("unseen conformation", unseen), ("wrong CTF", wrong_ctf),
                               ("other pixel size", other_pixel))}  # fmt: skip
for name, z in excess.items():
    print(f"{name}: mean NLL {z:+.1f} standard errors above the held-out images")
assert all(z > 5 for z in excess.values())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].plot(between.spatial_frequency_per_angstrom, between.fsc, label="half A vs half B")
axes[0].plot(against_truth.spatial_frequency_per_angstrom, against_truth.fsc,
             label="average vs truth")  # fmt: skip
axes[0].axhline(0.143, color="0.7", lw=0.8)
axes[0].set_xlabel("1 / A")
axes[0].set_ylabel("FSC")
axes[0].legend(fontsize=8)
axes[1].bar(list(excess), list(excess.values()))
axes[1].set_ylabel("excess NLL (standard errors)")
axes[1].tick_params(axis="x", labelsize=8)
fig.savefig(OUT / "cryodrgn_cross_validation.png", dpi=80, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# What this says for CryoDRGN: the half-set FSC is the resolution claim a decoder can make,
# as for any map; a held-out third gives the likelihood a user can watch for overfitting
# (the gap grows with epochs, not with the training loss), and the same number flags images
# the model does not explain, whether the cause is biology (a conformation absent from the
# training set) or metadata (a wrong CTF or pixel size).
