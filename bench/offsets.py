"""Where the refined offsets' error comes from (issue 16): in a ``bench/refine.py`` output
folder, each particle's offset found again by a fine search (0.05 px steps within 1.5 px of its
refined offset) at fixed rotations (the refined or the true ones) against a fixed reference (its
half's refined map, or the noise-free truth), scored as ``refine`` scores (its noise spectrum
and band); the median distance to the true offsets, beside the refinement's own and the
offsets' Cramér-Rao floor (``refine.efficient_median_errors``).

    python bench/offsets.py DIR [--pixel 1.5]

The shift's best score does not depend on the reference's greyscale (the projection's power
term is the same for every shift), so the truth needs none. The truth against the refined
rotations, or the refined map against the true ones, mixes two frames that may differ by a
degree or two (the refinement's frame drifts; ``bench/refine.py``'s truth-frame FSC).
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from refine import efficient_median_errors

from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import iter_batches
from cryomath.inference.scores import gaussian_pose_scores
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines.refinement import load_checkpoint
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume

STEP_PX, REACH_PX = 0.05, 1.5


def refound_offsets(table, state, spectra, rotations: np.ndarray) -> np.ndarray:
    """``(n, 2)`` offsets (pixels): each particle's best on the fine grid around its refined
    offset, its image scored at ``rotations`` against ``spectra[half - 1]``."""
    k = round(REACH_PX / STEP_PX)
    axis = torch.arange(-k, k + 1, dtype=torch.float64) * STEP_PX
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    centre = state.particles.shifts_px
    found = centre.copy()
    n, band = state.maps.shape[-1], state.band_shell
    blind = table.without_poses()
    for batch in iter_batches(blind, 250, None, torch.float64):
        index = batch.indices.numpy()
        ramp = phase_ramp((n, n), -torch.as_tensor(centre[index]), rfft=True)
        centred = replace(batch, spectra=batch.spectra * ramp)
        for h in (1, 2):
            pick = np.flatnonzero(state.halves[index] == h)
            if len(pick) == 0:
                continue
            at = torch.as_tensor(rotations[index[pick]])
            projections = extract_central_slices_rfft_3d(spectra[h - 1], at, max_shell=band)
            part = centred.subset(torch.as_tensor(pick))
            scores = gaussian_pose_scores(part, projections[:, None], grid, state.noise, band)
            found[index[pick]] += grid[scores[..., 0].argmax(1)].numpy()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a bench/refine.py --out folder")
    parser.add_argument("--pixel", type=float, default=1.5)
    args = parser.parse_args()
    table = read_particles(args.folder / "sim" / "particles.star")
    state = load_checkpoint(args.folder / "cryomath")
    truth = torch.from_numpy(read_mrc(args.folder / "sim" / "truth.mrc")[0].astype(np.float64))
    true_offsets = -table.origins_angstrom / args.pixel

    def median_error(offsets: np.ndarray) -> float:
        return float(np.median(np.linalg.norm(offsets - true_offsets, axis=1)))

    spectra = {
        "refined half map": [prepare_volume(m.double(), 2.0, voxel_size_angstrom=args.pixel)
                             for m in state.maps],
        "truth": [prepare_volume(truth, 2.0, voxel_size_angstrom=args.pixel)] * 2,
    }  # fmt: skip
    rotations = {"refined": state.particles.rotations, "true": table.rotations}
    result = {
        "refined_offsets_median_error_px": median_error(state.particles.shifts_px),
        "efficient_median_offset_error_px": efficient_median_errors(table, truth, args.pixel,
                                                                    0.05)[1],
        "refound": [],
    }  # fmt: skip
    for reference in spectra:
        for poses in rotations:
            found = refound_offsets(table, state, spectra[reference], rotations[poses])
            result["refound"].append({"reference": reference, "rotations": poses,
                                      "median_error_px": median_error(found)})  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
