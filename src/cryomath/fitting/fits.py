"""When two fits are one: ``x_ref = R x_query + T`` and ``(R', T')`` are the same fit if their
rotations are within an angle and their translations within a distance, modulo the reference's
point group when one is given. A symmetry ``g`` of the reference about its centre ``c`` maps a
fit to ``(g R, g T + (I - g) c)``."""

from collections.abc import Callable, Sequence

import torch

from cryomath.so3.metrics import geodesic_distance


def symmetry_mates(
    rotation: torch.Tensor, translation: torch.Tensor, operators: torch.Tensor, centre
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G, 3, 3)`` rotations and ``(G, 3)`` translations of the fit seen through each of the
    ``operators (G, 3, 3)`` acting about ``centre (3,)``."""
    g = operators.to(rotation)
    c = torch.as_tensor(centre, dtype=rotation.dtype, device=rotation.device)
    return g @ rotation, g @ translation + c - g @ c


def distinct(
    items: Sequence,
    fit: Callable,
    angle_rad: float,
    distance: float,
    operators: torch.Tensor | None = None,
    centre=(0.0, 0.0, 0.0),
    top: int | None = None,
) -> list:
    """The ``items`` (best first) that are not the same fit as a better one; ``fit(item)``
    gives its ``(R, T)``. At most ``top`` are kept."""
    kept, mates = [], []
    for item in items:
        r, t = fit(item)
        if not any(
            bool(
                (
                    (geodesic_distance(mr, r) < angle_rad)
                    & (torch.linalg.vector_norm(mt - t, dim=-1) < distance)
                ).any()
            )
            for mr, mt in mates
        ):
            kept.append(item)
            if operators is None:
                mates.append((r[None], t[None]))
            else:
                mates.append(symmetry_mates(r, t, operators, centre))
            if top is not None and len(kept) == top:
                break
    return kept
