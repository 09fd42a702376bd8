"""Noise and detector models: Gaussian noise at an SNR or with a power spectrum, counting
noise at a dose with MTF/DQE, and the matching log-likelihoods."""

from cryomath.noise.detector import expected_counts, pixel_mtf, shot_noise
from cryomath.noise.gaussian import add_white_noise, coloured_noise, noise_sigma_for_snr
from cryomath.noise.likelihood import gaussian_log_likelihood, poisson_log_likelihood

__all__ = [
    "add_white_noise",
    "coloured_noise",
    "expected_counts",
    "gaussian_log_likelihood",
    "noise_sigma_for_snr",
    "pixel_mtf",
    "poisson_log_likelihood",
    "shot_noise",
]
