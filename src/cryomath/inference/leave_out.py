"""Leave-out references for local searches (``refine``): each gold-standard half's particles in
G interleaved groups, and for each group the half's map without that group's sums.

Why: in a local search an image scored against its own half's map meets its own noise, inserted
at its current pose, which makes that pose look right and pins it there (on the default demo's
800 particles one local pass moves 31 % of the poses against the own half's map, 87 % against
the other half's). The map of the half less the image's group holds none of the image and
(G - 1) / G of the half's strength, and the halves stay independent. The groups' padded sums
(2 G accumulators) must fit in memory, so fewer groups are used where they do not.
"""

from collections.abc import Callable

import numpy as np
import torch

from cryomath.devices import available_memory_bytes
from cryomath.imaging import FourierAccumulator


def group_rows(halves: np.ndarray, half: int, groups: int) -> list[np.ndarray]:
    """Half ``half``'s rows (``halves (n,)`` in {1, 2}) in ``groups`` interleaved groups."""
    rows = np.flatnonzero(halves == half)
    return [rows[g::groups] for g in range(groups)]


def affordable_groups(groups: int, n: int, dtype, device) -> int:
    """At most ``groups``: as many as fit in free memory with their sums (2 G accumulators
    padded to ``2 n``, and three more for the totals and an inversion; 808 MB each at box 256
    in float32); 1 (no leave-out) below 2."""
    per_sums = FourierAccumulator.sums_bytes(n, 2.0, dtype)
    fits = int((available_memory_bytes(device) / per_sums - 3) // 2)
    return groups if fits >= groups else (fits if fits >= 2 else 1)


def left_out_maps(parts: dict, invert_sums: Callable) -> torch.Tensor:
    """``(2, G, n, n, n)``: each half's map from its sums less each group's. ``parts[(half,
    group)]``: the groups' ``PassSums`` (one accumulator each, keyed ``(0, half)``);
    ``invert_sums``: an accumulator to its map (the half maps' regularisation)."""
    maps = []
    for h in (1, 2):
        own = [p.accumulators[(0, h)] for (half, _), p in sorted(parts.items()) if half == h]
        total = own[0].copy()
        for acc in own[1:]:
            total.merge(acc)
        for acc in own:
            left = total.copy()
            left.subtract(acc)
            maps.append(invert_sums(left))
    return torch.stack(maps).unflatten(0, (2, -1))
