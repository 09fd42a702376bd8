"""Local resolution: the FSC of the two half maps in a soft spherical window slid over the box
(windows batched through ``fourier_shell_correlation``, in chunks), the 0.143 crossing of each
window as the value at its centre, interpolated trilinearly to every voxel."""

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.masks import spherical_mask
from cryomath.resolution.crossing import crossing_frequency
from cryomath.resolution.curves import fourier_shell_correlation


def local_resolution(
    half1: torch.Tensor,
    half2: torch.Tensor,
    voxel_size_angstrom: float,
    window_px: int = 20,
    step_px: int = 4,
    threshold: float = 0.143,
    chunk: int = 256,
) -> torch.Tensor:
    """``(n, n, n)`` map of local resolution in Angstrom (clamped to Nyquist and the window's
    lowest shell)."""
    n = half1.shape[-1]
    if half1.shape != half2.shape or half1.ndim != 3:
        raise InvalidInputError("local resolution needs two maps of the same (n, n, n) shape")
    if not 4 <= window_px <= n:
        raise InvalidInputError(f"window must be 4 .. {n} pixels, got {window_px}")
    window = spherical_mask(
        (window_px,) * 3, window_px / 2 - 3, 3.0, dtype=half1.dtype, device=half1.device
    )
    starts = list(range(0, n - window_px + 1, step_px))
    device = half1.device
    corners = torch.tensor(
        [(z, y, x) for z in starts for y in starts for x in starts], device=device
    )
    offsets = torch.arange(window_px, device=device)
    values = []
    for begin in range(0, len(corners), chunk):
        c = corners[begin : begin + chunk]
        idx = [c[:, i, None] + offsets for i in range(3)]

        index = (idx[0][:, :, None, None], idx[1][:, None, :, None], idx[2][:, None, None, :])
        curve = fourier_shell_correlation(
            half1[index], half2[index], voxel_size_angstrom, mask=window
        )
        for fsc in curve.fsc:
            one = type(curve)(fsc, curve.spatial_frequency_per_angstrom, curve.counts)
            values.append(1 / max(crossing_frequency(one, threshold), 1e-6))
    grid = torch.tensor(values, dtype=half1.dtype, device=device).reshape(
        len(starts), len(starts), len(starts)
    )
    nyquist = 2 * voxel_size_angstrom
    grid = grid.clamp(min=nyquist, max=window_px * voxel_size_angstrom)
    # window centres sit at start + window / 2; interpolate the coarse grid back to voxels
    full = F.interpolate(
        grid[None, None], size=(len(starts) * step_px,) * 3, mode="trilinear", align_corners=False
    )[0, 0]
    out = torch.full((n, n, n), float(grid.mean()), dtype=half1.dtype, device=device)
    lo = window_px // 2 - step_px // 2
    hi = min(n, lo + full.shape[0])
    out[lo:hi, lo:hi, lo:hi] = full[: hi - lo, : hi - lo, : hi - lo]
    return out
