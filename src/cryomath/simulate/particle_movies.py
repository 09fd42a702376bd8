"""Movies of particles: each particle moves along its own smooth track (the movie's global drift
plus a local, spatially correlated motion), is damaged frame by frame, and is counted by a
detector with an MTF and a DQE; the truth is every particle's track.

Particle ``p``'s content in frame ``f`` sits at ``positions_px[p] + tracks_px[p, f]`` (x, y,
pixels; ``fourier.phase_ramp``'s sign). ``tracks = drift_track(settings)[f] + local[p, f]``:
the local part is a smooth field over the micrograph (three seeded plane waves with
wavelengths of 0.7-2 micrograph widths, rms ``local_rms_px`` over the particles at the last
frame) that grows as the drift does (fast at first: ``1 - exp(-f / tau)``, ``tau`` a quarter
of the movie), plus each particle's own random walk of 0.02 px per frame. Beam-induced motion
looks like this: a whole-frame drift with a slow doming and tilting of the ice on top.

Each frame's contrast is minus the sum of the particles' boxes (their images ``(P, b, b)`` in
RELION's particle convention, ``imaging.predict_images``: protein white, the CTF positive at low
frequency; a detector sees protein dark, and extraction inverts it back), each attenuated by
the exposure filter at the frame's middle exposure and moved by its track (the CTF's
delocalisation is cut at the box); then counting noise (``noise.shot_noise``) with the
detector's MTF and DQE. Boxes must lie inside the micrograph.
"""

from dataclasses import dataclass

import torch

from cryomath.ctf import exposure_filter, frame_exposures
from cryomath.errors import InvalidInputError
from cryomath.fourier.crop import box_corners
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shift import phase_ramp
from cryomath.noise import shot_noise
from cryomath.simulate.movies import MovieSettings, drift_track, slowing_motion


@dataclass
class ParticleMovie:
    """``frames (F, H, W)`` counts; the truth: ``tracks_px (P, F, 2)`` of each particle,
    ``drift_px (F, 2)`` the global part, ``exposures_e_per_a2 (F,)`` at the frames' ends."""

    frames: torch.Tensor
    tracks_px: torch.Tensor
    drift_px: torch.Tensor
    exposures_e_per_a2: torch.Tensor


def local_tracks(positions_px: torch.Tensor, micrograph_shape: tuple[int, int], n_frames: int,
                 local_rms_px: float, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """``(P, F, 2)`` the local motion of particles at ``positions_px (P, 2)`` (module
    docstring): zero at the first frame, smooth in time and over the micrograph."""
    g = torch.Generator().manual_seed(seed + 0x10CA1)
    dtype = torch.float64
    xy = positions_px.to(dtype)
    width = float(max(micrograph_shape))
    field = torch.zeros_like(xy)
    for _ in range(3):
        angle, phase = 2 * torch.pi * torch.rand(2, generator=g, dtype=dtype)
        wavelength = width * (0.7 + 1.3 * torch.rand((), generator=g, dtype=dtype))
        direction = torch.stack([torch.cos(angle), torch.sin(angle)])
        amplitude = torch.randn(2, generator=g, dtype=dtype)
        wave = torch.cos(2 * torch.pi * xy @ direction / wavelength + phase)
        field = field + amplitude * wave[:, None]
    field = field / field.pow(2).sum(1).mean().sqrt().clamp(min=1e-12) * local_rms_px
    motion = slowing_motion(n_frames)
    growth = motion / motion[-1].clamp(min=1e-12)  # as the drift grows, reaching 1
    walk = torch.cumsum(0.02 * torch.randn(len(xy), n_frames, 2, generator=g, dtype=dtype), 1)
    return field[:, None, :] * growth[None, :, None] + walk - walk[:, :1]


def simulate_particle_movie(
    images: torch.Tensor,
    positions_px: torch.Tensor,
    micrograph_shape: tuple[int, int],
    pixel_size_angstrom: float,
    settings: MovieSettings,
    local_rms_px: float = 1.0,
    mtf: torch.Tensor | None = None,
    dqe: torch.Tensor | None = None,
) -> ParticleMovie:
    """The movie of particle ``images (P, b, b)`` (contrast) centred at integer
    ``positions_px (P, 2)`` of a ``micrograph_shape (H, W)`` field (module docstring);
    ``mtf``/``dqe``: the detector's, on the rfft grid of the micrograph (``noise.detector``)."""
    if images.ndim != 3 or images.shape[-1] != images.shape[-2] or len(images) != len(positions_px):
        raise InvalidInputError("images must be (P, b, b) with one position (x, y) each")
    if settings.n_frames < 2 or not settings.dose_per_frame_e_per_a2 > 0:
        raise InvalidInputError("a movie needs at least 2 frames and a positive dose per frame")
    h, w = micrograph_shape
    b = images.shape[-1]
    corner = box_corners(positions_px, b, (h, w))
    dose = settings.dose_per_frame_e_per_a2
    ends = frame_exposures(settings.n_frames, dose, settings.pre_exposure_e_per_a2)
    drift = drift_track(settings)
    local = local_tracks(positions_px, (h, w), settings.n_frames, local_rms_px, settings.seed)
    tracks = drift[None] + local
    k = fftfreq_grid((b, b), voxel_size_angstrom=pixel_size_angstrom, dtype=torch.float64)
    damage = exposure_filter(k.norm(dim=-1), ends - dose / 2, settings.voltage_kv)  # (F, b, b')
    field = torch.zeros(settings.n_frames, h, w, dtype=torch.float64)
    for p, (x0, y0) in enumerate(corner.tolist()):
        # each particle's box, damaged and moved frame by frame (it has room to move in its box)
        spectra = fft_nd(images[p].double(), 2, rfft=True) * damage * phase_ramp((b, b), tracks[p])
        field[:, y0 : y0 + b, x0 : x0 + b] -= ifft_nd(spectra, (b, b), rfft=True)
    g = torch.Generator().manual_seed(settings.seed + 1)
    counts = shot_noise(field, dose, pixel_size_angstrom, mtf, dqe, generator=g)
    return ParticleMovie(counts, tracks, drift, ends)
