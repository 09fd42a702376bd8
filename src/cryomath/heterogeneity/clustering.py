"""k-means clustering of latent coordinates (Lloyd's algorithm with k-means++ seeding, Arthur &
Vassilvitskii 2007): discrete states from a continuous embedding."""

from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError


@dataclass
class Clusters:
    """``labels (N,)`` in ``0 .. k - 1``, ``centres (k, d)``, ``inertia`` (the summed squared
    distance of the points to their centres)."""

    labels: torch.Tensor
    centres: torch.Tensor
    inertia: float


def kmeans(points: torch.Tensor, k: int, seed: int = 0, iterations: int = 100,
           restarts: int = 5) -> Clusters:  # fmt: skip
    """The best of ``restarts`` runs of Lloyd's algorithm on ``points (N, d)`` (or ``(N,)``)."""
    x = points.reshape(len(points), -1).double()
    if not 1 <= k <= len(x):
        raise InvalidInputError(f"k must be in [1, {len(x)}], got {k}")
    g = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(restarts):
        centres = x[torch.randint(len(x), (1,), generator=g)]
        while len(centres) < k:  # k-means++: far points are likelier next centres
            distance = torch.cdist(x, centres).min(1).values ** 2
            pick = torch.multinomial(distance / distance.sum(), 1, generator=g)
            centres = torch.cat([centres, x[pick]])
        for _ in range(iterations):
            labels = torch.cdist(x, centres).argmin(1)
            moved = torch.stack([x[labels == j].mean(0) if bool((labels == j).any())
                                 else centres[j] for j in range(k)])  # fmt: skip
            if torch.equal(moved, centres):
                break
            centres = moved
        labels = torch.cdist(x, centres).argmin(1)
        inertia = float(((x - centres[labels]) ** 2).sum())
        if best is None or inertia < best.inertia:
            best = Clusters(labels, centres, inertia)
    return best
