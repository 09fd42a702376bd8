"""How finely the data can place poses: RELION's estimated accuracy of orientations and offsets
(``ml_optimiser.cpp``'s ``calculateExpectedAngularErrors``; its log's "Auto-refine: Estimated
accuracy angles= ... degrees; offsets= ... Angstroms").

For each of a few particles at its current pose ``A``, the reference's predicted image (with the
particle's CTF) is compared with the one at a pose turned by a growing angle ``d`` (or shifted by
a growing offset); the particle's accuracy is the first ``d`` at which the log-likelihood ratio
of the two, ``sum_k m_k C^2 |P(A) - P(A')|^2 / (4 sigma2_k)`` over the band searched (the
E-step's own convention, ``inference.scores``), passes ``ln 100`` (RELION's p = 0.01); the
estimate is the mean over the particles. RELION's ladder of trial angles (0.05 degree steps
below 0.2, up to 5 degree steps above 20, at most 30 degrees; shifts up to 10 pixels) is kept.
One difference: RELION turns one Euler angle (rot, tilt or psi at random); here the turn is
about a random axis, so that ``d`` is the geodesic angle whatever the pose (an Euler angle's
turn near tilt 0 moves the pose by less than ``d``).

``refine`` uses it as RELION does: the HEALPix order is not made finer once its step is below
75 % of the estimated accuracy (finer steps only fit noise), and a stalled refinement there has
converged.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, iter_batches, predict_spectra
from cryomath.inference.scores import band_samples_and_noise
from cryomath.projection import prepare_volume
from cryomath.so3.lie import exp_map

LOG_RATIO = math.log(100.0)  # RELION's p-value 0.01 (its 4.60517)


def _ladder(steps: list[tuple[float, float]], stop: float) -> torch.Tensor:
    """RELION's trial values: from 0, ``step`` while the value is below ``limit``, to ``stop``."""
    values, value = [0.0], 0.0
    while value < stop:
        value += next(step for limit, step in steps if value < limit)
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


ANGLES_DEGREES = _ladder([(0.2, 0.05), (1, 0.1), (2, 0.2), (5, 0.5), (10, 1), (20, 2),
                          (math.inf, 5)], 30.0)  # fmt: skip
SHIFTS_PX = _ladder([(1, 0.1), (2, 0.2), (5, 0.5), (10, 1), (math.inf, 2)], 10.0)


@dataclass(frozen=True)
class PoseAccuracy:
    """The mean over the particles tried of the turn (degrees) and shift (pixels) at which a
    pose becomes 100 times less likely than the current one."""

    rotation_degrees: float
    offset_px: float


def pose_accuracy(
    table, rows: np.ndarray, reference: torch.Tensor, rotations: np.ndarray,
    voxel_size_angstrom: float, noise: NoiseSpectrum, max_shell: int, seed: int = 0,
    group_scales: dict[int, float] | None = None, dtype=torch.float64, device=None,
) -> PoseAccuracy:  # fmt: skip
    """The accuracy (module docstring) of the particles ``rows`` of ``table`` at their poses
    (``rotations (table.n, 3, 3)``, every particle's: batches come by optics group, not in the
    order of ``rows``) against ``reference (n, n, n)`` (on the images' greyscale),
    scored in shells 1 to ``max_shell`` with ``noise`` and each optics group's amplitude scale
    ``group_scales`` (default 1, as the E-step); the turns' axes and the shifts' directions are
    drawn from ``seed``."""
    spectrum = prepare_volume(reference.to(device, dtype), 2.0,
                              voxel_size_angstrom=voxel_size_angstrom)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    angles, shifts, pose = [], [], torch.as_tensor(rotations, dtype=dtype)
    for batch in iter_batches(table, 128, device, dtype, read_images=False, rows=rows):
        b = len(batch)
        axes = torch.randn(b, 3, generator=generator, dtype=torch.float64)
        axes = axes / axes.norm(dim=-1, keepdim=True)
        turns = exp_map(axes[:, None, :] * torch.deg2rad(ANGLES_DEGREES)[None, :, None])
        at = (turns.to(dtype) @ pose[batch.indices.cpu(), None]).to(device)  # (B, L, 3, 3)
        zero = torch.zeros(b, 2, dtype=dtype, device=device)
        predicted = predict_spectra(spectrum, batch, rotations=at, shifts_px=zero)
        predicted = predicted * (group_scales or {}).get(batch.optics_group, 1.0)
        keep, m, sigma2 = band_samples_and_noise(batch, noise, max_shell)
        weight = m / (4 * sigma2)
        flat = predicted.flatten(-2)[..., keep]  # (B, L, K)
        angles.append(_first_passing(((flat - flat[:, :1]).abs() ** 2 * weight).sum(-1),
                                     ANGLES_DEGREES))  # fmt: skip
        direction = torch.zeros(b, 2, dtype=dtype)
        direction[torch.arange(b), torch.randint(0, 2, (b,), generator=generator)] = 1.0
        trial = direction[:, None, :] * SHIFTS_PX.to(dtype)[None, :, None]  # (B, L, 2)
        n = batch.image_size
        ramps = phase_ramp((n, n), trial.to(device), rfft=True).flatten(-2)[..., keep]
        loss = (flat[:, :1].abs() ** 2 * (1 - ramps).abs() ** 2 * weight).sum(-1)
        shifts.append(_first_passing(loss, SHIFTS_PX))
    return PoseAccuracy(float(torch.cat(angles).mean()), float(torch.cat(shifts).mean()))


def _first_passing(log_ratio: torch.Tensor, ladder: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the first value of ``ladder`` whose ``log_ratio (B, L)`` passes ``ln 100``; the
    last value where none does (RELION's search stops there too)."""
    passing = log_ratio.cpu() > LOG_RATIO
    first = torch.where(passing.any(-1), passing.double().argmax(-1), len(ladder) - 1)
    return ladder[first]
