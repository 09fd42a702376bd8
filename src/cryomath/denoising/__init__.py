"""Denoising of particle images (issue 19): the posterior means of conjugate models.

* :func:`estimate_signal_power` and :func:`wiener_denoise`: Gaussian signal and noise, the
  signal's power per shell estimated from the images and the noise from their background (the
  Wiener filter, CTF-aware).
* :func:`estimate_steerable_covariance` and :func:`cwf_denoise`: covariance Wiener filtering
  (CWF), a Gaussian prior with the images' mean and steerable covariance, eigenvalues shrunk.
* :func:`gamma_prior_from_counts` and :func:`poisson_gamma_posterior_mean`: counting images,
  a Gamma prior per pixel, the Gamma posterior's mean.

Above ``imaging``; the CLI's ``cryomath denoise`` streams a stack through them.
"""

from cryomath.denoising.counting import (
    GammaPrior,
    gamma_prior_from_counts,
    gamma_prior_from_moments,
    poisson_gamma_posterior_mean,
)
from cryomath.denoising.cwf import (
    SteerableCovariance,
    cwf_denoise,
    estimate_steerable_covariance,
)
from cryomath.denoising.wiener import estimate_signal_power, wiener_denoise

__all__ = [
    "GammaPrior",
    "SteerableCovariance",
    "cwf_denoise",
    "estimate_signal_power",
    "estimate_steerable_covariance",
    "gamma_prior_from_counts",
    "gamma_prior_from_moments",
    "poisson_gamma_posterior_mean",
    "wiener_denoise",
]
