"""cryomath: the mathematics of single-particle cryo-EM, in PyTorch.

Layers (each imports only from those below it):

* ``so3``, ``fourier``: rotations and conventions; Fourier grids, shells, crop/pad, shifts.
* ``io`` (beside the compute layers): MRC, STAR, cryoSPARC ``.cs``, cryoDRGN pickles, and the
  :class:`~cryomath.io.ParticleTable` that converts between them.
* ``cli``: the ``cryomath`` command.

Conventions are defined once, in docs/conventions.md.
"""

__version__ = "0.1.0"
