"""Motion correction of movies (issue 19): global frame alignment, per-particle tracks with
Bayesian polishing's prior, and aligned, dose-weighted sums.

* :func:`align_frames`: each frame's drift, by aligning it iteratively against the sum of the
  others (MotionCor2's and RELION's own global step).
* :func:`extract_boxes`: particle boxes cut from the globally aligned frames.
* :func:`fit_local_tracks`: each particle's track against its reference image, with a Gaussian
  process prior on velocities correlated over the micrograph (``MotionPrior``: RELION's
  ``relion_motion_refine`` defaults).
* :func:`aligned_sum`: frames (or each particle's boxes) moved back by their drift (or track)
  and summed, dose-weighted when their exposures are given (``ctf.damage``).

Above ``fourier`` and ``ctf``; ``simulate.movies`` and ``simulate.particle_movies`` make movies
with known motion.
"""

from cryomath.motion.boxes import extract_boxes
from cryomath.motion.global_alignment import align_frames, aligned_sum
from cryomath.motion.local import LocalTracks, MotionPrior, fit_local_tracks

__all__ = [
    "LocalTracks",
    "MotionPrior",
    "align_frames",
    "aligned_sum",
    "extract_boxes",
    "fit_local_tracks",
]
