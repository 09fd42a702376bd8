"""cryomath: the mathematics of single-particle cryo-EM, in PyTorch.

Layers (each imports only from those below it; docs/architecture.md):

* ``so3``, ``fourier``: rotations and conventions; Fourier grids, shells, crop/pad, shifts.
* ``projection``, ``ctf``, ``noise``, ``atoms``: slices and their adjoint, the CTF, noise and
  detector models, atoms to density.
* ``imaging``: particle batches (one optics group each), the forward model and its exact
  adjoint, likelihoods and noise spectra: what every algorithm on images stands on.
* ``reconstruction``, ``resolution``, ``fitting``, ``simulate``, ``inference`` (the E-step's
  core so far): compute on top of ``imaging``.
* ``pipelines``: files, shards, resume, Dask.
* ``cli`` and ``demo``: the ``cryomath`` command and the demo, thin.
* ``io`` (beside the compute layers): MRC, STAR, cryoSPARC ``.cs``, cryoDRGN pickles, and the
  :class:`~cryomath.io.ParticleTable` that converts between them; ``errors`` and ``devices``
  under everything.

Conventions are defined once, in docs/conventions.md.
"""

__version__ = "0.1.0"
