# %% [markdown]
# # SO(3): metrics and averaging (Hartley, Trumpf, Dai & Li, IJCV 2013)
#
# The study group's questions on *Rotation Averaging*, answered with `cryomath.so3` and checked
# against independent computations (scipy's `Rotation`, numpy's matrix norms).

# %%
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Table 2: the metrics and their relations
# For rotations `R, S` at angle `theta` apart: angular (geodesic) `d = theta`, chordal
# `||R - S||_F = 2 sqrt(2) sin(theta / 2)`, quaternion `min ||q -+ p|| = 2 sin(theta / 4)`.
# Checked on 10,000 random pairs, the angle taken from scipy.

# %%
r = so3.random_rotations(10000, 1)
s = so3.random_rotations(10000, 2)
theta = torch.from_numpy(
    (Rotation.from_matrix(r.numpy()).inv() * Rotation.from_matrix(s.numpy())).magnitude()
)
chord = torch.from_numpy(np.linalg.norm((r - s).numpy(), axis=(-2, -1)))
q, p = so3.quaternion_from_matrix(r), so3.quaternion_from_matrix(s)
quat = torch.minimum((q - p).norm(dim=-1), (q + p).norm(dim=-1))
assert torch.allclose(so3.geodesic_distance(r, s), theta, atol=1e-9)
assert torch.allclose(so3.chordal_distance(r, s), chord, atol=1e-9)
assert torch.allclose(so3.quaternion_distance(q, p), quat, atol=1e-9)
assert torch.allclose(chord, 2 * math.sqrt(2) * torch.sin(theta / 2), atol=1e-9)
assert torch.allclose(quat, 2 * torch.sin(theta / 4), atol=1e-9)
# and between chordal and quaternion: d_chord = sqrt(2) d_quat sqrt(4 - d_quat^2)
assert torch.allclose(chord, math.sqrt(2) * quat * torch.sqrt(4 - quat**2), atol=1e-9)
print("Table 2 relations hold on 10,000 random pairs")

# %% [markdown]
# ## Rotations about one axis; 5-degree rotations about a swept axis
# About a common axis the distance is the difference of the angles. For two rotations by
# `alpha` about axes `phi` apart, `cos(d / 2) = cos^2(alpha / 2) + sin^2(alpha / 2) cos(phi)`:
# all rotations by 5 degrees lie on the sphere of radius 5 degrees about the identity (the
# boundary of the ball of radius 5 in SO(3)), and their distances run from 0 (same axis) to
# 10 degrees (opposite axes), 7.07 at right angles.

# %%
about_z = so3.matrix_about_axis(torch.deg2rad(torch.tensor([20.0, 55.0], dtype=torch.float64)), "z")
assert abs(math.degrees(float(so3.geodesic_distance(about_z[0], about_z[1]))) - 35.0) < 1e-9
alpha = math.radians(5.0)
phi = torch.linspace(0, math.pi / 2, 91, dtype=torch.float64)
axes = torch.stack([torch.sin(phi), torch.zeros_like(phi), torch.cos(phi)], -1)  # z -> x
swept = so3.matrix_from_rotvec(alpha * axes)
d = torch.rad2deg(so3.geodesic_distance(swept[0], swept))
expected = torch.rad2deg(
    2
    * torch.acos(
        (math.cos(alpha / 2) ** 2 + math.sin(alpha / 2) ** 2 * torch.cos(phi)).clamp(max=1)
    )
)
assert torch.allclose(d, expected, atol=1e-6)
assert abs(float(d[-1]) - 7.0699) < 1e-3
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(torch.rad2deg(phi), d)
ax.set_xlabel("angle between the axes (degrees), z towards x")
ax.set_ylabel("distance from the 5-degree rotation about z (degrees)")
fig.savefig(OUT / "swept_axis.png", dpi=100)
print(f"5 degrees about z vs 5 degrees about x: {float(d[-1]):.4f} degrees")

# %% [markdown]
# ## The metrics against the angle, and a picture of balls and geodesics
# The chordal and quaternion distances are increasing functions of the angle, so all three
# have the same nearest neighbours and the same balls; only their averages differ. For the
# question's Proposition 2 (read here as the appendix's statement on balls: a ball of radius
# below pi/2 contains the geodesic between any two of its points) the picture shows, in the
# rotation-vector coordinates of the ball's centre, geodesics `R exp(t log(R^T S))` between
# random points of a 60-degree ball: they stay inside; in a 150-degree ball some leave it.

# %%
t = torch.linspace(0, math.pi, 200, dtype=torch.float64)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
left.plot(t, t, label="angular")
left.plot(t, so3.chordal_from_angle(t), label="chordal")
left.plot(t, 2 * torch.sin(t / 4), label="quaternion")
left.set_xlabel("theta (radians)")
left.legend()
assert bool((torch.diff(so3.chordal_from_angle(t)) > 0).all())


def farthest_along_geodesics(radius, pairs=300, seed=0):
    """Largest distance from the centre (identity) reached by geodesics between points of the
    ball, and the paths' rotation vectors."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(
        torch.randn(2, pairs, 3, generator=g, dtype=torch.float64), dim=-1
    )
    length = radius * torch.rand(2, pairs, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    a, b = so3.exp_map(direction[0] * length[0]), so3.exp_map(direction[1] * length[1])
    steps = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None, None]
    paths = a @ so3.exp_map(steps * so3.log_map(a.transpose(-1, -2) @ b))  # (41, pairs, 3, 3)
    vectors = so3.log_map(paths)
    return float(vectors.norm(dim=-1).max()), vectors


inside, paths = farthest_along_geodesics(math.radians(60))
outside, _ = farthest_along_geodesics(math.radians(150))
assert inside <= math.radians(60) + 1e-9 and outside > math.radians(150)
for k in range(40):
    right.plot(paths[:, k, 0], paths[:, k, 2], lw=0.6)
circle = torch.linspace(0, 2 * math.pi, 200)
right.plot(math.radians(60) * torch.cos(circle), math.radians(60) * torch.sin(circle), "k--")
right.set_aspect("equal")
right.set_title("geodesics in a 60-degree ball (x-z section of rotation vectors)")
fig.savefig(OUT / "metrics_and_balls.png", dpi=100)
print(
    f"geodesics reach {math.degrees(inside):.1f} deg in a 60-degree ball, "
    f"{math.degrees(outside):.1f} in a 150-degree ball"
)

# %% [markdown]
# ## Algorithm 1: the geodesic L2 mean by log and exp
# `R <- R exp(mean_i log(R^T R_i))` until the step vanishes (`so3.karcher_mean`). Rotations
# placed symmetrically about a centre (`C exp(+v)` and `C exp(-v)`) average to the centre: the
# mean lies in the middle.

# %%
centre = so3.random_rotations(1, 7)[0]
v = torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.4
cloud = torch.cat([centre @ so3.exp_map(v), centre @ so3.exp_map(-v)])
mean = so3.karcher_mean(cloud)
assert float(so3.geodesic_distance(mean, centre)) < 1e-10
# at the mean the tangent vectors log(M^T R_i) sum to zero (the optimality condition)
assert float(so3.log_map(mean.T @ cloud).sum(0).norm()) < 1e-9
print("the geodesic L2 mean of a symmetric cloud is its centre")

# %% [markdown]
# ## Which distance does quaternion averaging minimise?
# The principal eigenvector of `sum_i q_i q_i^T` maximises `sum_i (q . q_i)^2 =
# sum_i cos^2(theta_i / 2)`, i.e. minimises `sum_i sin^2(theta_i / 2) = sum_i d_chord^2 / 8`:
# it is the chordal L2 mean (Hartley et al., Section 5.3), not the geodesic one.

# %%
cloud = so3.random_rotations(1, 11)[0] @ so3.exp_map(
    torch.randn(20, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.5
)
quaternion_mean = so3.quaternion_mean(cloud)
chordal_mean = so3.chordal_mean(cloud)
assert float(so3.geodesic_distance(quaternion_mean, chordal_mean)) < 1e-9


def chordal_cost(m):
    return float((so3.chordal_distance(m, cloud) ** 2).sum())


nearby = quaternion_mean @ so3.exp_map(
    torch.randn(200, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 0.05
)
assert all(chordal_cost(m) >= chordal_cost(quaternion_mean) for m in nearby)
geodesic_gap = math.degrees(float(so3.geodesic_distance(quaternion_mean, so3.karcher_mean(cloud))))
print(f"quaternion mean = chordal mean; it is {geodesic_gap:.3f} degrees from the geodesic mean")
