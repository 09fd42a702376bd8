"""CryoBench's measures of heterogeneity methods (Jeon et al. 2024), computed from any method's
output (its maps and per-particle latents or labels) against a simulation's truth.

* FSC-AUC: the area under the FSC curve of a map against its true conformation, over spatial
  frequency in cycles/pixel from 0 to Nyquist (0.5) by the trapezoid rule: 0.5 for a perfect
  map, ``k_c`` for one that is perfect up to ``k_c`` and uncorrelated beyond.
* Latent correlation: Pearson's correlation of each latent dimension with the true trajectory
  coordinate; a method is scored by the dimension with the largest ``|rho|``.
* Adjusted Rand index of predicted against true discrete states (Hubert & Arabie 1985): 1 for
  the same partition under any naming, 0 in expectation for independent ones.
"""

from dataclasses import dataclass

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.resolution import fourier_shell_correlation


def fsc_auc(volume: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The FSC-AUC ``(...)`` of maps ``(..., n, n, n)`` against their truths (module
    docstring; leading dims broadcast): shells ``0 .. n // 2`` at frequencies ``s / n``."""
    volume, truth = torch.broadcast_tensors(volume, truth)
    curve = fourier_shell_correlation(volume.contiguous(), truth.contiguous()).fsc
    n = volume.shape[-1]
    shells = curve[..., : n // 2 + 1]
    return torch.trapezoid(shells, dx=1.0 / n, dim=-1)


@dataclass
class LatentCorrelation:
    """``per_dimension (d,)`` Pearson correlations with the truth; ``best`` the largest
    ``|rho|``, in dimension ``dimension``."""

    per_dimension: np.ndarray
    best: float
    dimension: int


def latent_correlation(latent, truth) -> LatentCorrelation:
    """Pearson's correlation of every column of ``latent (N, d)`` (or ``(N,)``) with the true
    coordinate ``truth (N,)``."""
    z = np.asarray(latent, dtype=np.float64)
    z = z[:, None] if z.ndim == 1 else z
    t = np.asarray(truth, dtype=np.float64)
    if z.ndim != 2 or t.shape != (len(z),) or len(t) < 3:
        raise InvalidInputError(
            f"need latents (N, d) and a truth (N,) with N >= 3; got {z.shape} and {t.shape}"
        )
    zc, tc = z - z.mean(0), t - t.mean()
    scale = np.sqrt((zc**2).sum(0) * (tc**2).sum())
    rho = np.divide(zc.T @ tc, scale, out=np.zeros(z.shape[1]), where=scale > 0)
    best = int(np.argmax(np.abs(rho)))
    return LatentCorrelation(rho, float(abs(rho[best])), best)


def adjusted_rand_index(true_labels, predicted_labels) -> float:
    """Hubert & Arabie's adjusted Rand index of two labellings of the same ``N`` particles."""
    a = np.unique(np.asarray(true_labels), return_inverse=True)[1].ravel()
    b = np.unique(np.asarray(predicted_labels), return_inverse=True)[1].ravel()
    if len(a) != len(b) or len(a) < 2:
        raise InvalidInputError("need two labellings of the same particles (at least two)")
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.float64)
    np.add.at(table, (a, b), 1)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / pairs(np.array([len(a)], dtype=np.float64))
    maximum = (rows + cols) / 2
    if maximum == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return float((index - expected) / (maximum - expected))
