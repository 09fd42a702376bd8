"""Particle boxes cut from a movie's frames: the frames moved back by their global drift (a
Fourier shift of the whole frame, one frame at a time), then a ``b x b`` box centred at each
particle's integer position (``fourier.fft``'s centre: index ``b // 2``)."""

import torch

from cryomath.fourier.crop import box_corners
from cryomath.fourier.shift import shift_2d


def extract_boxes(frames: torch.Tensor, positions_px: torch.Tensor, box: int,
                  drift_px: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``(P, F, box, box)`` the boxes of particles at ``positions_px (P, 2)`` (x, y) in
    ``frames (F, H, W)``, aligned by ``drift_px (F, 2)`` (``motion.align_frames``) if given."""
    f, h, w = frames.shape
    corner = box_corners(positions_px, box, (h, w))
    rows = corner[:, 1, None] + torch.arange(box)  # (P, b)
    cols = corner[:, 0, None] + torch.arange(box)
    out = torch.empty(len(corner), f, box, box, dtype=frames.dtype, device=frames.device)
    for i in range(f):  # one frame in memory at a time
        frame = frames[i] if drift_px is None else shift_2d(frames[i], -drift_px[i])
        out[:, i] = frame[rows[:, :, None], cols[:, None, :]]
    return out
