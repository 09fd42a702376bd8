"""The imaging layer: what every algorithm that compares a map with particle images uses.

* :func:`iter_batches` streams a :class:`~cryomath.io.ParticleTable` as
  :class:`ParticleBatch` es (image spectra, poses, shifts, CTFs, pixel size, optics group,
  rows, weights) on one device and dtype, one optics group per batch.
* :func:`predict_spectra` / :func:`predict_images` (the forward model: slice, CTF, shift, at
  each batch's own pixel size) and :func:`insert_spectra` (its exact adjoint, with weights per
  image or per (image, pose)) into a :class:`FourierAccumulator`.
* :func:`gaussian_log_likelihood` (Fourier space, noise power per optics group and shell) and
  :func:`poisson_log_likelihood` (counting data, real space); the noise power
  (:class:`NoiseSpectrum`) from residuals (:class:`NoiseSpectrumEstimator`, RELION's rule) or
  from the background of raw images (:func:`estimate_noise_from_background`).
* :func:`pose_fisher_information`: how well an image can tell its pose (the Fisher information
  of rotation and shift under the Gaussian model, and the Cramér-Rao bound it sets).

Above ``projection``, ``ctf`` and ``noise``; below ``reconstruction``, ``simulate`` and the
inference packages. Layouts: docs/conventions.md ("Imaging").
"""

from cryomath.imaging.accumulator import FourierAccumulator
from cryomath.imaging.batch import ParticleBatch, iter_batches, optics_groups
from cryomath.imaging.ewald import Ewald
from cryomath.imaging.fisher import pose_fisher_information, rotation_error_bound_degrees
from cryomath.imaging.likelihood import gaussian_log_likelihood, poisson_log_likelihood
from cryomath.imaging.model import (
    frequency_scale,
    insert_spectra,
    predict_images,
    predict_spectra,
    transfer_power,
)
from cryomath.imaging.noise_spectrum import (
    NoiseSpectrum,
    NoiseSpectrumEstimator,
    estimate_noise_from_background,
)

__all__ = [
    "Ewald",
    "FourierAccumulator",
    "NoiseSpectrum",
    "NoiseSpectrumEstimator",
    "ParticleBatch",
    "estimate_noise_from_background",
    "frequency_scale",
    "gaussian_log_likelihood",
    "insert_spectra",
    "iter_batches",
    "optics_groups",
    "poisson_log_likelihood",
    "pose_fisher_information",
    "predict_images",
    "predict_spectra",
    "rotation_error_bound_degrees",
    "transfer_power",
]
