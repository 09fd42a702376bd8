"""Optimisation on SO(3).

``rotated_point_jacobian``: the closed-form derivative of ``p' = q p q*`` with respect to the
quaternion ``q = (w, u)`` (not normalised: ``p' = (w^2 - u.u) p + 2 (u.p) u + 2 w (u x p)``):
``dp'/dw = 2 (w p + u x p)``, ``dp'/du = 2 ((u.p) I + u p^T - p u^T - w [p]_x)``.

``fit_rotation``: Riemannian gradient descent: the gradient of ``loss(R exp(hat(v)))`` at
``v = 0`` (by autograd) is the body-frame tangent gradient; step ``R <- R exp(-lr g)`` with a
backtracking line search, so every iterate stays exactly on SO(3).
"""

from collections.abc import Callable

import torch

from cryomath.so3.lie import exp_map, hat


def rotated_point_jacobian(q: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions and ``(..., 3)`` points -> ``(..., 3, 4)`` Jacobian
    ``d(q p q*) / d(w, x, y, z)``."""
    w, u = q[..., :1], q[..., 1:]
    d_w = 2 * (w * points + torch.linalg.cross(u, points, dim=-1))
    eye = torch.eye(3, dtype=q.dtype, device=q.device)
    u_dot_p = (u * points).sum(-1)[..., None, None]
    d_u = 2 * (
        u_dot_p * eye
        + u[..., :, None] * points[..., None, :]
        - points[..., :, None] * u[..., None, :]
        - w[..., None] * hat(points)
    )
    return torch.cat([d_w[..., :, None], d_u], -1)


def fit_rotation(
    loss: Callable[[torch.Tensor], torch.Tensor],
    initial: torch.Tensor,
    iterations: int = 200,
    step: float = 0.1,
    tolerance: float = 1e-10,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss(R)`` (a scalar of a ``(3, 3)`` rotation) from ``initial``; returns the
    rotation and the loss history."""
    rotation = initial.detach()
    history = []
    for _ in range(iterations):
        v = torch.zeros(3, dtype=rotation.dtype, device=rotation.device, requires_grad=True)
        value = loss(rotation @ exp_map(v))
        (gradient,) = torch.autograd.grad(value, v)
        history.append(float(value.detach()))
        if float(gradient.norm()) < tolerance:
            break
        lr = step
        while lr > 1e-12:  # backtracking: accept the first step that lowers the loss
            candidate = rotation @ exp_map(-lr * gradient)
            with torch.no_grad():
                if float(loss(candidate)) < history[-1]:
                    break
            lr /= 2
        else:
            break
        rotation = candidate.detach()
    return rotation, history
