# %% [markdown]
# # SO(3): encodings (Euler angles, quaternions, matrices) and derivatives
#
# The study group's questions from "encoding of SO(3)": Slabaugh's Euler angles, a quaternion
# rotation by hand, how to rotate many points and how to store rotations, and the derivative
# of a rotated point with respect to its quaternion.

# %%
import math
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3

# %% [markdown]
# ## Euler angles from a rotation matrix (Slabaugh)
# For `R = Rz(phi) Ry(theta) Rx(psi)`: `theta = -asin(R31)`, `psi = atan2(R32, R33)`,
# `phi = atan2(R21, R11)` (dividing both arguments by `cos(theta)` changes nothing when
# `cos(theta) > 0`). Compared with `so3.euler_from_matrix(R, "ZYX")` and scipy.

# %%


def slabaugh(r):
    theta = -torch.asin(r[..., 2, 0])
    psi = torch.atan2(r[..., 2, 1], r[..., 2, 2])
    phi = torch.atan2(r[..., 1, 0], r[..., 0, 0])
    return torch.stack([phi, theta, psi], -1)


rotations = so3.random_rotations(1000, 0)
ours = so3.euler_from_matrix(rotations, "ZYX")
assert torch.allclose(slabaugh(rotations), ours, atol=1e-10)
assert np.allclose(
    Rotation.from_matrix(rotations.numpy()).as_euler("ZYX"), ours.numpy(), atol=1e-10
)
print("Slabaugh's angles = so3.euler_from_matrix(R, 'ZYX') = scipy's, on 1,000 rotations")

# %% [markdown]
# ## Rotating (1, 0, 0) about z by 180 degrees with a quaternion
# `q = (cos 90, 0, 0, sin 90) = (0, 0, 0, 1)` and `q p q* = (-1, 0, 0)`.

# %%
q = so3.quaternion_from_rotvec(torch.tensor([0.0, 0.0, math.pi], dtype=torch.float64))
assert torch.allclose(q.abs(), torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)
moved = so3.rotate_points_quaternion(q, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
assert torch.allclose(moved, torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64), atol=1e-12)
print("q (1,0,0) q* =", moved.tolist())

# %% [markdown]
# ## Many points: apply as a matrix, store as a quaternion
# Rotating `n` points costs 9 multiply-adds each with the matrix and ~30 with the quaternion
# sandwich, so convert once and use the matrix; store 4 numbers (a quaternion) rather than 9
# when memory matters. Timed here (1,000,000 points, float64).

# %%
points = torch.randn(1_000_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
q = so3.quaternion_from_matrix(rotations[0])


def timed(f, repeat=5):
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


by_matrix = timed(lambda: so3.rotate_points(so3.matrix_from_quaternion(q), points))
by_quaternion = timed(lambda: so3.rotate_points_quaternion(q, points))
assert torch.allclose(
    so3.rotate_points(rotations[0], points), so3.rotate_points_quaternion(q, points), atol=1e-12
)
print(f"1e6 points: matrix {by_matrix * 1e3:.1f} ms, quaternion {by_quaternion * 1e3:.1f} ms")

# %% [markdown]
# ## The derivative of a rotated point with respect to the quaternion
# `so3.rotated_point_jacobian` is the closed form of `d(q p q*) / dq`; autograd agrees. With
# it, gradient descent on the sphere of quaternions finds a pose from point pairs.

# %%
q = so3.random_quaternions(5, 3)
p = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
closed = so3.rotated_point_jacobian(q, p)


def sandwich(qq, pp):  # q (0, p) q*, by Hamilton products
    pure = torch.cat([torch.zeros(1, dtype=pp.dtype), pp])
    return so3.quaternion_multiply(so3.quaternion_multiply(qq, pure), so3.quaternion_conjugate(qq))[
        1:
    ]


auto = torch.stack([
    torch.autograd.functional.jacobian(lambda qq, pp=pp: sandwich(qq, pp), qq)
    for qq, pp in zip(q, p, strict=True)
])  # fmt: skip
assert torch.allclose(closed, auto, atol=1e-12)

truth = so3.random_rotations(1, 9)[0]
source = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
target = source @ truth.T
# gradient descent on the quaternion with the closed-form Jacobian: loss = sum |q p q* - t|^2,
# gradient sum 2 J^T (q p q* - t), projected on the unit sphere and renormalised each step
quaternion = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
history = []
for _ in range(500):
    residual = so3.rotate_points_quaternion(quaternion, source) - target
    history.append(float((residual**2).sum()))
    gradient = 2 * torch.einsum(
        "nij,ni->j", so3.rotated_point_jacobian(quaternion.expand(50, 4), source), residual
    )
    gradient = gradient - (gradient @ quaternion) * quaternion  # tangent to the sphere
    quaternion = torch.nn.functional.normalize(quaternion - 2e-3 * gradient, dim=0)
    if history[-1] < 1e-20:
        break
found = so3.matrix_from_quaternion(quaternion)
error = math.degrees(float(so3.geodesic_distance(found, truth)))
assert error < 1e-4
# the same pose by Riemannian descent on the matrices (so3.fit_rotation, autograd gradient)
riemannian, _ = so3.fit_rotation(
    lambda r: ((source @ r.T - target) ** 2).sum(), torch.eye(3, dtype=torch.float64)
)
assert float(so3.geodesic_distance(riemannian, truth)) < 1e-6
print(f"pose by gradient descent: {len(history)} steps, {error:.2e} degrees from the truth")
