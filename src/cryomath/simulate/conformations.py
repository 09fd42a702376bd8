"""Heterogeneous datasets: each particle is one of several volumes (discrete states, drawn with
given weights) or a point on a trajectory through a series of volumes (continuous: a
coordinate ``t`` uniform in [0, 1], the volume linearly interpolated between the two frames
around ``t (K - 1)``; images are linear in the volume, so the image is the same blend of the
two frames' images).

States are drawn from their own random stream, ``(seed, 'states')``, after everything else:
a dataset of one volume is the same as before heterogeneity existed.
"""

from dataclasses import dataclass

import numpy as np
import torch

from cryomath.errors import InvalidInputError

STATE_STREAM = 0x5717E5  # the states' random stream: seed + this


@dataclass(frozen=True)
class Conformations:
    """Per particle: ``state (N,)`` the index of its volume (discrete) or of the frame before it
    (continuous), ``blend (N,)`` the weight of the frame after it (0 for discrete states), and
    ``coordinate (N,)`` its trajectory coordinate in [0, 1] (None for discrete states)."""

    state: np.ndarray
    blend: np.ndarray
    coordinate: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> "Conformations":
        coordinate = None if self.coordinate is None else self.coordinate[rows]
        return Conformations(self.state[rows], self.blend[rows], coordinate)

    def nearest_state(self) -> np.ndarray:
        """The volume closest to each particle (its state, or the nearer frame)."""
        return self.state + (self.blend >= 0.5)


def sample_conformations(n_particles: int, n_volumes: int, seed: int,
                         weights: tuple[float, ...] | None = None,
                         trajectory: bool = False) -> Conformations:  # fmt: skip
    """Draw each particle's state (module docstring): discrete with ``weights`` (default equal)
    over ``n_volumes``, or continuous along them with ``trajectory``."""
    if n_volumes < 1 or (trajectory and n_volumes < 2):
        raise InvalidInputError("a trajectory needs at least two volumes (its first and last)")
    g = torch.Generator().manual_seed(seed + STATE_STREAM)
    if trajectory:
        if weights is not None:
            raise InvalidInputError("state weights are for discrete states, not a trajectory")
        coordinate = torch.rand(n_particles, generator=g, dtype=torch.float64).numpy()
        position = coordinate * (n_volumes - 1)
        state = np.minimum(np.floor(position).astype(np.int64), n_volumes - 2)
        return Conformations(state, position - state, coordinate)
    p = np.full(n_volumes, 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    if p.shape != (n_volumes,) or not (np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
        raise InvalidInputError(
            f"state weights must be {n_volumes} non-negative numbers, not all zero; got {weights}"
        )
    drawn = torch.multinomial(torch.from_numpy(p / p.sum()), n_particles, True, generator=g)
    return Conformations(drawn.numpy().astype(np.int64), np.zeros(n_particles))
