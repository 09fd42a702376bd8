"""Motion correction of a movie file (``cryomath motioncorr``): read the frames, align them
(``motion.align_frames``), write the aligned sum (dose-weighted when the dose per frame is
given), the drift (JSON) and its figure. The movie is read whole (frames of one micrograph)."""

from pathlib import Path

import numpy as np
import torch

from cryomath.ctf.damage import frame_exposures
from cryomath.errors import InvalidInputError
from cryomath.io import read_mrc, write_mrc
from cryomath.io.atomic import check_output_path, output_set
from cryomath.io.results import write_json
from cryomath.motion import align_frames, aligned_sum
from cryomath.plots import plot_drift

OUTPUTS = ("sum.mrc", "drift.json", "drift.png")


def read_movie(movie: Path, dtype=np.float64) -> tuple[torch.Tensor, float]:
    """``(F, h, w)`` the frames of ``movie`` (an MRC stack, read whole) and its header's pixel
    size (0 when unknown); refuses fewer than 2 frames."""
    frames, info = read_mrc(movie, dtype)
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise InvalidInputError(f"{movie}: a movie needs at least 2 frames, got {frames.shape}")
    writable = frames if frames.flags.writeable else frames.copy()  # read as stored: read-only
    return torch.from_numpy(writable), float(info.voxel_size_angstrom[0])


def correct_movie(movie: Path, out: Path, pixel_size_angstrom: float | None = None,
                  dose_per_frame_e_per_a2: float | None = None, pre_exposure_e_per_a2=0.0,
                  voltage_kv: float = 300.0, bfactor_px2: float = 150.0,
                  force: bool = False) -> dict:  # fmt: skip
    """Align ``movie`` (an MRC stack of frames) into ``out``; returns a summary."""
    for name in OUTPUTS:  # refused before any work, not after it
        check_output_path(out / name, force)
    stack, header_pixel = read_movie(movie)
    pixel = pixel_size_angstrom or header_pixel
    if not pixel > 0:
        raise InvalidInputError(f"{movie} has no pixel size: give --pixel-size")
    drift = align_frames(stack, bfactor_px2)
    exposures = None
    if dose_per_frame_e_per_a2 is not None:
        exposures = frame_exposures(len(stack), dose_per_frame_e_per_a2, pre_exposure_e_per_a2)
    total = aligned_sum(stack, drift, pixel, exposures, voltage_kv)
    result = {"movie": str(movie), "frames": len(stack), "pixel_size_angstrom": pixel,
              "dose_weighted": exposures is not None, "drift_px": drift.tolist(),
              "total_drift_px": float(torch.diff(drift, dim=0).norm(dim=1).sum())}  # fmt: skip
    with output_set():
        write_mrc(out / "sum.mrc", total.float().numpy()[None], pixel, force=force)
        write_json(out / "drift.json", result, force)
        plot_drift(drift.numpy(), out / "drift.png", f"drift of {movie.name}", force)
    return {k: v for k, v in result.items() if k != "drift_px"}
