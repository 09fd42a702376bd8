"""Resolution from an FSC curve at the usual criteria, interpolated between shells.

- fixed thresholds: 0.143 (half maps, Rosenthal & Henderson 2003) and 0.5;
- half-bit (van Heel & Schatz 2005): ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``;
- 3-sigma: ``3 / sqrt(n / 2)``;
with n the number of full-spectrum samples in the shell. The resolution is where the curve
first falls below the threshold (after shell 1), by linear interpolation in spatial frequency.
"""

import math

import torch

from cryomath.resolution.curves import FSCCurve


def half_bit_threshold(counts: torch.Tensor) -> torch.Tensor:
    """Half-bit curve (van Heel & Schatz 2005) for ``counts (n_shells,)`` full-spectrum
    samples per shell."""
    root = torch.sqrt(counts.clamp(min=1))
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def three_sigma_threshold(counts: torch.Tensor) -> torch.Tensor:
    """3-sigma curve ``3 / sqrt(n / 2)`` for ``counts (n_shells,)`` samples per shell."""
    return 3 / torch.sqrt((counts / 2).clamp(min=1))


def crossing_frequency(curve: FSCCurve, threshold: float | torch.Tensor) -> float:
    """Spatial frequency (1/A) where the FSC first drops below ``threshold`` (a number or a
    per-shell curve); the last shell's frequency if it never does. 1-D curves only."""
    fsc = curve.fsc
    if fsc.ndim != 1:
        raise ValueError("crossing_frequency takes one curve")
    t = torch.as_tensor(threshold, dtype=fsc.dtype, device=fsc.device).expand_as(fsc)
    below = (fsc < t).nonzero().flatten()
    below = below[below >= 1]
    f = curve.spatial_frequency_per_angstrom
    if below.numel() == 0:
        return float(f[-1])
    i = int(below[0])
    d0, d1 = float(fsc[i - 1] - t[i - 1]), float(fsc[i] - t[i])
    fraction = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(f[i - 1] + fraction * (f[i] - f[i - 1]))


def resolution_angstrom(curve: FSCCurve, criterion: str | float = 0.143) -> float:
    """Resolution (A) at ``criterion``: a number, ``"half-bit"`` or ``"3-sigma"``."""
    if criterion == "half-bit":
        threshold = half_bit_threshold(curve.counts)
    elif criterion == "3-sigma":
        threshold = three_sigma_threshold(curve.counts)
    else:
        threshold = float(criterion)
    frequency = crossing_frequency(curve, threshold)
    return math.inf if frequency <= 0 else 1.0 / frequency
