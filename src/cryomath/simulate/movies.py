"""Movies: dose-fractionated frames of one field (a micrograph's contrast) with radiation
damage, a global drift and counting noise, and their truth.

Frame ``f`` (of ``n_frames``, ``dose_per_frame`` e/A^2 each) is the contrast attenuated by the
exposure filter at the exposure accumulated at the frame's middle (``ctf.damage``), moved by
the drift ``s_f`` (pixels, a Fourier shift), and detected as Poisson counts of
``N0 (1 + c)`` with ``N0 = dose_per_frame * pixel^2``. The drift is beam-induced motion's
usual shape: fast at first, slowing down (``s_f = v tau (1 - exp(-f / tau)) u``, ``tau`` a
quarter of the movie, ``u`` a seeded random direction, ``v`` the initial speed in pixels per
frame), plus a small seeded jitter (0.05 px per frame, a random walk).
"""

from dataclasses import dataclass

import torch

from cryomath.ctf import exposure_filter, frame_exposures
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shift import phase_ramp
from cryomath.noise.draws import poisson


@dataclass
class MovieSettings:
    """A movie's exposure and motion (units in the names)."""

    n_frames: int = 20
    dose_per_frame_e_per_a2: float = 2.0
    pre_exposure_e_per_a2: float = 0.0
    voltage_kv: float = 300.0
    initial_speed_px_per_frame: float = 1.0
    seed: int = 0


@dataclass
class Movie:
    """``frames (F, h, w)`` counts; the truth: ``shifts_px (F, 2)`` (x, y) of each frame's
    content and ``exposures_e_per_a2 (F,)`` accumulated at each frame's end."""

    frames: torch.Tensor
    shifts_px: torch.Tensor
    exposures_e_per_a2: torch.Tensor


def texture(n: int, contrast_rms: float = 0.1, seed: int = 0) -> torch.Tensor:
    """``(n, n)`` a random field whose power falls as ``1 / k`` (a micrograph's texture at
    low magnification: much structure at low resolution, some at all), of rms
    ``contrast_rms``: a field to make movies of."""
    g = torch.Generator().manual_seed(seed)
    k = fftfreq_grid((n, n), dtype=torch.float64).norm(dim=-1).clamp(min=1 / n)
    noise = torch.randn(n, n // 2 + 1, 2, generator=g, dtype=torch.float64)
    field = torch.fft.irfft2(torch.view_as_complex(noise) / k.sqrt(), s=(n, n))
    return (field - field.mean()) / field.std() * contrast_rms


def slowing_motion(n_frames: int) -> torch.Tensor:
    """``(F,)`` how far beam-induced motion has gone by each frame at an initial speed of one
    pixel per frame: ``tau (1 - exp(-f / tau))``, ``tau`` a quarter of the movie."""
    f = torch.arange(n_frames, dtype=torch.float64)
    tau = max(n_frames / 4, 1.0)
    return tau * (1 - torch.exp(-f / tau))


def drift_track(settings: MovieSettings) -> torch.Tensor:
    """``(F, 2)`` the drift of each frame (module docstring), pixels."""
    g = torch.Generator().manual_seed(settings.seed)
    angle = 2 * torch.pi * torch.rand((), generator=g, dtype=torch.float64)
    direction = torch.stack([torch.cos(angle), torch.sin(angle)])
    smooth = settings.initial_speed_px_per_frame * slowing_motion(settings.n_frames)
    jitter = torch.cumsum(0.05 * torch.randn(settings.n_frames, 2, generator=g,
                                             dtype=torch.float64), 0)  # fmt: skip
    return smooth[:, None] * direction + jitter


def simulate_movie(contrast: torch.Tensor, pixel_size_angstrom: float,
                   settings: MovieSettings) -> Movie:  # fmt: skip
    """The movie of a field of ``contrast (h, w)`` (module docstring)."""
    if settings.n_frames < 2 or not settings.dose_per_frame_e_per_a2 > 0:
        raise InvalidInputError("a movie needs at least 2 frames and a positive dose per frame")
    h, w = contrast.shape
    dose = settings.dose_per_frame_e_per_a2
    ends = frame_exposures(settings.n_frames, dose, settings.pre_exposure_e_per_a2)
    k = fftfreq_grid((h, w), voxel_size_angstrom=pixel_size_angstrom, dtype=torch.float64)
    damage = exposure_filter(k.norm(dim=-1), ends - dose / 2, settings.voltage_kv)
    shifts = drift_track(settings)
    spectra = fft_nd(contrast.double(), 2, rfft=True) * damage * phase_ramp((h, w), shifts)
    frames = ifft_nd(spectra, (h, w), rfft=True)
    n0 = dose * pixel_size_angstrom**2
    rate = (n0 * (1 + frames)).clamp(min=0)
    g = torch.Generator().manual_seed(settings.seed + 1)
    return Movie(poisson(rate, g), shifts, ends)
