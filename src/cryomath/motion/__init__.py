"""Motion correction of movies (issue 19): global frame alignment and the aligned,
dose-weighted sum.

* :func:`align_frames`: each frame's drift, by aligning it iteratively against the sum of the
  others (MotionCor2's and RELION's own global step).
* :func:`aligned_sum`: the frames moved back by their drift and summed, dose-weighted when
  their exposures are given (``ctf.damage``).

Above ``fourier`` and ``ctf``; ``simulate.movies`` makes movies with a known drift.
"""

from cryomath.motion.global_alignment import align_frames, aligned_sum

__all__ = ["align_frames", "aligned_sum"]
