# %% [markdown]
# # Transformations in SPARX and EMAN2 (Baldwin & Penczek, JSB 2007)
#
# The axis-angle matrix, composition of rigid transforms, the distance between rotations, and
# sampling: Penczek's quasi-uniform directions against HEALPix, Hopf and Super-Fibonacci.

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
from cryomath.so3.grids import (
    covering_radius,
    even_angles,
    healpix_grid,
    hopf_grid,
    super_fibonacci,
)

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The axis-angle matrix is Rodrigues' formula
# `R = cos(a) I + (1 - cos(a)) n n^T + sin(a) [n]_x` for a unit axis `n` and angle `a`.

# %%
generator = torch.Generator().manual_seed(0)
axes = torch.nn.functional.normalize(
    torch.randn(100, 3, generator=generator, dtype=torch.float64), dim=-1
)
angles = torch.rand(100, generator=generator, dtype=torch.float64) * math.pi
c, s = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
rodrigues = (
    c * torch.eye(3, dtype=torch.float64)
    + (1 - c) * axes[:, :, None] * axes[:, None, :]
    + s * so3.hat(axes)
)
ours = so3.matrix_from_rotvec(axes * angles[:, None])
assert torch.allclose(ours, rodrigues, atol=1e-12)
assert np.allclose(
    Rotation.from_rotvec((axes * angles[:, None]).numpy()).as_matrix(), ours.numpy(), atol=1e-12
)
print("axis-angle matrix = Rodrigues = scipy on 100 random rotations")

# %% [markdown]
# ## Composing rigid transforms
# `T = (R, t)` maps `x -> R x + t`; applying `T1` then `T2` gives `(R2 R1, R2 t1 + t2)`: the
# first translation is rotated by the second rotation. `so3.compose_rigid(T2, T1)` (4x4
# homogeneous matrices, rightmost applied first) gives exactly that.

# %%
r1, r2 = so3.random_rotations(2, 3)
t1 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
t2 = torch.tensor([-4.0, 0.5, 2.0], dtype=torch.float64)
both = so3.compose_rigid(so3.rigid_matrix(r2, t2), so3.rigid_matrix(r1, t1))
r, t, _ = so3.decompose_rigid(both)
assert torch.allclose(r, r2 @ r1) and torch.allclose(t, r2 @ t1 + t2)
x = torch.randn(10, 3, generator=generator, dtype=torch.float64)
assert torch.allclose((x @ r1.T + t1) @ r2.T + t2, x @ r.T + t)
print("composed translation:", [round(v, 4) for v in t.tolist()])

# %% [markdown]
# ## The distance between two rotations
# The angle of `R1^T R2` (the rotation taking one to the other), in `[0, pi]`.

# %%
pairs_a, pairs_b = so3.random_rotations(1000, 5), so3.random_rotations(1000, 6)
scipy_angle = (
    Rotation.from_matrix(pairs_a.numpy()).inv() * Rotation.from_matrix(pairs_b.numpy())
).magnitude()
assert np.allclose(so3.geodesic_distance(pairs_a, pairs_b).numpy(), scipy_angle, atol=1e-9)

# %% [markdown]
# ## Sampling SO(3): Penczek's quasi-uniform directions and the alternatives
# Penczek's `even_angles` spaces directions by `delta` on rings of constant tilt; with in-plane
# angles every `delta` degrees it samples SO(3). Compared at about 4,600 rotations by covering
# radius (the largest distance from any rotation to the grid; smaller is better).

# %%
delta = 15.0
directions = even_angles(delta)
psi = torch.arange(0.0, 360.0, delta, dtype=torch.float64)
penczek = torch.cat(
    [
        torch.cat([directions, torch.full((len(directions), 1), float(p), dtype=torch.float64)], 1)
        for p in psi
    ]
)
grids = {
    "Penczek even_angles x psi": so3.quaternion_from_matrix(so3.matrix_from_relion_euler(penczek)),
    "HEALPix (RELION order 2)": so3.quaternion_from_matrix(
        so3.matrix_from_relion_euler(healpix_grid(2))
    ),
    "Hopf (order 2)": hopf_grid(2),
    "Super-Fibonacci": super_fibonacci(4608),
}
radius = {name: math.degrees(covering_radius(q, n_probes=50000)) for name, q in grids.items()}
for name, q in grids.items():
    print(f"{name:28s} {len(q):5d} rotations, covering radius {radius[name]:.1f} degrees")
# measured: Penczek x psi 12.0 (4,416 rotations), HEALPix 13.1, Hopf 13.2, Super-Fibonacci
# 13.1 (4,608 each): at equal counts the four cover SO(3) within 10 % of each other; the
# quasi-uniform grids earn their keep by structure (HEALPix's hierarchy, Super-Fibonacci's
# any-n), not by a much smaller covering radius
assert max(radius.values()) / min(radius.values()) < 1.2
fig = plt.figure(figsize=(8, 4.5))
ax = fig.add_subplot(projection="mollweide")
rot = np.radians((directions[:, 0].numpy() + 180) % 360 - 180)
ax.scatter(rot, np.radians(90 - directions[:, 1].numpy()), s=6)
ax.set_title(f"Penczek's quasi-uniform directions, delta = {delta:g} degrees")
fig.savefig(OUT / "penczek_directions.png", dpi=100)

# %% [markdown]
# ## Other ways to sample the sphere uniformly
# Random (normalised Gaussian vectors), the Fibonacci (golden-angle) spiral and HEALPix pixel
# centres, at about the same count, by covering radius on the sphere.

# %%


def sphere_covering_degrees(points, probes=20000):
    probe = torch.nn.functional.normalize(
        torch.randn(probes, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
        dim=-1,
    )
    nearest = (probe @ points.T).max(-1).values.clamp(-1, 1)
    return math.degrees(float(torch.acos(nearest).max()))


n = 768
golden = math.pi * (3 - math.sqrt(5))
k = torch.arange(n, dtype=torch.float64)
z = 1 - 2 * (k + 0.5) / n
fibonacci = torch.stack(
    [torch.sqrt(1 - z**2) * torch.cos(golden * k), torch.sqrt(1 - z**2) * torch.sin(golden * k), z],
    -1,
)
random = torch.nn.functional.normalize(
    torch.randn(n, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64), dim=-1
)
healpix = so3.matrix_from_relion_euler(
    torch.cat([so3.grids.healpix_directions(3), torch.zeros(768, 1, dtype=torch.float64)], 1)
)[:, 2, :]  # the projection direction is A's third row
sphere = {"random": random, "Fibonacci spiral": fibonacci, "HEALPix": healpix}
for name, points in sphere.items():
    radius_degrees = sphere_covering_degrees(points)
    print(f"{name:18s} {len(points)} directions, covering radius {radius_degrees:.2f} degrees")
assert sphere_covering_degrees(fibonacci) < sphere_covering_degrees(random)
