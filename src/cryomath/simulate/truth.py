"""Simulated particle datasets: the ground truth and the images (the files are written by
``pipelines.simulate_dataset``).

For each particle: a pose (``poses.sample_poses``), an origin ``~ N(0, shift_sigma)`` Angstrom
per axis (RELION 3.1 semantics: the image is the projection translated by ``-origin``), a CTF
(mean defocus uniform in the range, astigmatism ``|dU - dV|`` uniform up to the given value, a
uniform angle; with ``delocalisation`` the CTF acts over an empty field around the particle and
the box is cut out of it, so what the CTF moves beyond the box is lost:
``simulate.delocalisation``; with ``ewald`` each image is the sum of the two single
side-bands on curved slices, ``imaging.ewald``), then noise: white Gaussian at ``snr``
(docs/conventions.md: per image, signal variance over noise variance over the whole box),
white Gaussian of one sd ``white_noise_sd`` for every image (``relion_project
--white_noise``: the noise does not depend on the particle, so molecules of different mass
are not told apart by their noise) or counting noise at ``dose`` (the image is scaled to an
rms contrast of ``contrast_rms``, then Poisson counts of ``dose * pixel^2 (1 + c)``, stored
minus their mean so that images stay protein-positive around zero).

Each particle's noise depends only on ``(seed, particle index)`` (``particle_generators``),
so a dataset is the same for any batch or shard size, order of work or device (up to rounding
across devices).
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.imaging import Ewald, ParticleBatch, predict_images
from cryomath.io import CTFParameters, ParticleTable
from cryomath.noise import add_white_noise, shot_noise
from cryomath.noise.draws import standard_normal
from cryomath.simulate.conformations import Conformations
from cryomath.simulate.delocalisation import ctf_over_field, field_size_px
from cryomath.simulate.poses import sample_poses


@dataclass
class SimulationSettings:
    """Everything that defines a simulated dataset (units in the names)."""

    n_particles: int
    pixel_size_angstrom: float
    seed: int = 0
    poses: str = "uniform"
    grid_order: int = 2
    preferred_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    preferred_fraction: float = 0.5
    preferred_kappa: float = 20.0
    shift_sigma_angstrom: float = 0.0
    defocus_min_angstrom: float = 10000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_angstrom: float = 500.0
    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1
    bfactor_angstrom2: float = 0.0
    ctf: bool = True
    snr: float | None = 0.1  # each image's own: noise var = that image's signal var / snr
    white_noise_sd: float | None = None  # one sd for every image (relion_project's)
    dose_e_per_a2: float | None = None
    contrast_rms: float = 0.1
    pad_factor: float = 2.0
    shard_size: int = 10240
    delocalisation: bool = False  # the CTF over the micrograph: what leaves the box is lost
    ewald: bool = False  # images of the Ewald sphere's two side-bands (imaging.ewald)
    state_weights: tuple[float, ...] | None = None  # several volumes: discrete states' weights
    trajectory: bool = False  # several volumes: a continuous trajectory through them

    def check(self) -> None:
        """Every field in its range (one line naming the first that is not), before any work."""
        import math

        finite = {k: v for k, v in vars(self).items() if isinstance(v, float)}
        for name, value in finite.items():
            if not math.isfinite(value):
                raise InvalidInputError(f"{name} must be a finite number, got {value}")
        ranges = [
            ("n_particles", self.n_particles >= 1, "at least 1"),
            ("pixel_size_angstrom", self.pixel_size_angstrom > 0, "positive"),
            ("seed", self.seed >= 0, "at least 0"),
            ("grid_order", 0 <= self.grid_order <= 7, "in [0, 7]"),
            ("preferred_fraction", 0 <= self.preferred_fraction <= 1, "in [0, 1]"),
            ("preferred_kappa", self.preferred_kappa >= 0, "at least 0"),
            ("shift_sigma_angstrom", self.shift_sigma_angstrom >= 0, "at least 0"),
            ("astigmatism_angstrom", self.astigmatism_angstrom >= 0, "at least 0"),
            ("voltage_kv", 10 <= self.voltage_kv <= 3000, "in [10, 3000] kV"),
            ("amplitude_contrast", 0 <= self.amplitude_contrast < 1, "in [0, 1)"),
            ("snr", self.snr is None or self.snr > 0, "positive"),
            ("white_noise_sd", self.white_noise_sd is None or self.white_noise_sd > 0, "positive"),
            ("dose_e_per_a2", self.dose_e_per_a2 is None or self.dose_e_per_a2 > 0, "positive"),
            ("contrast_rms", self.contrast_rms > 0, "positive"),
            ("pad_factor", 1 <= self.pad_factor <= 4, "in [1, 4]"),
            ("shard_size", self.shard_size >= 1, "at least 1"),
        ]
        for name, ok, wanted in ranges:
            if not ok:
                raise InvalidInputError(f"{name} must be {wanted}, got {getattr(self, name)}")
        if self.ewald and (self.delocalisation or not self.ctf):
            raise InvalidInputError("ewald needs the CTF and is not modelled with delocalisation")
        if sum(x is not None for x in (self.snr, self.white_noise_sd, self.dose_e_per_a2)) > 1:
            raise InvalidInputError("give one of an SNR, a white-noise sd or a dose")
        if not 0 < self.defocus_min_angstrom <= self.defocus_max_angstrom:
            raise InvalidInputError("defocus range must be 0 < min <= max (Angstrom)")
        if self.ctf and self.defocus_min_angstrom - self.astigmatism_angstrom / 2 < 50:
            raise InvalidInputError(
                "defocus_min_angstrom - astigmatism_angstrom / 2 must be at least 50 A (the "
                "smallest defocus of an astigmatic CTF)"
            )
        if not 0 <= self.spherical_aberration_mm <= 100:
            raise InvalidInputError("spherical_aberration_mm must be in [0, 100]")
        direction = np.asarray(self.preferred_direction, dtype=np.float64)
        if direction.shape != (3,) or not np.isfinite(direction).all() or not direction.any():
            raise InvalidInputError("preferred_direction must be a non-zero finite 3-vector")


def ground_truth(s: SimulationSettings, image_size: int) -> ParticleTable:
    """The ground truth of all particles (a few numbers each): poses, origins, CTFs, halves,
    and where the images go (``particles_NNN.mrcs`` shards of ``shard_size``)."""
    g = torch.Generator().manual_seed(s.seed)
    n = s.n_particles
    poses = sample_poses(
        n, s.poses, g, s.grid_order, s.preferred_direction, s.preferred_fraction, s.preferred_kappa
    )
    origins = torch.randn(n, 2, generator=g, dtype=torch.float64) * s.shift_sigma_angstrom
    mean_df = s.defocus_min_angstrom + torch.rand(n, generator=g, dtype=torch.float64) * (
        s.defocus_max_angstrom - s.defocus_min_angstrom
    )
    astig = torch.rand(n, generator=g, dtype=torch.float64) * s.astigmatism_angstrom
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 180 - 90
    subset = torch.randint(1, 3, (n,), generator=g)
    ctf = CTFParameters(
        defocus_u_angstrom=(mean_df + astig / 2).numpy(),
        defocus_v_angstrom=(mean_df - astig / 2).numpy(),
        defocus_angle_degrees=angle.numpy(),
        voltage_kv=np.full(n, s.voltage_kv),
        spherical_aberration_mm=np.full(n, s.spherical_aberration_mm),
        amplitude_contrast=np.full(n, s.amplitude_contrast),
        phase_shift_degrees=np.zeros(n),
        bfactor_angstrom2=np.full(n, s.bfactor_angstrom2),
        scale=np.ones(n),
    )
    index = np.arange(n)
    return ParticleTable(
        n=n,
        rotations=poses.numpy(),
        origins_angstrom=origins.numpy(),
        ctf=ctf,
        pixel_size_angstrom=s.pixel_size_angstrom,
        image_size=image_size,
        image_paths=np.array(
            [f"particles_{i // s.shard_size:03d}.mrcs" for i in index], dtype=object
        ),
        image_indices=index % s.shard_size,
        optics_group=1,
        random_subset=subset.numpy(),
    )


def particle_generators(seed: int, start: int, stop: int) -> list[torch.Generator]:
    """One random stream per particle, from ``(seed, particle index)``: a particle's noise is
    the same whatever the batch, the shard, the order of work or the device."""
    return [torch.Generator().manual_seed((seed % 2**32) << 32 | i) for i in range(start, stop)]


def _clean_images(spectrum, batch: ParticleBatch, s: SimulationSettings) -> torch.Tensor:
    """The noise-free images of one volume."""
    if s.delocalisation and batch.ctf is not None:
        n, pixel = batch.image_size, batch.pixel_size_angstrom
        field = field_size_px(n, pixel, s.defocus_max_angstrom + s.astigmatism_angstrom / 2,
                              s.spherical_aberration_mm, s.voltage_kv)  # fmt: skip
        return ctf_over_field(predict_images(spectrum, replace(batch, ctf=None)), batch.ctf,
                              pixel, field)  # fmt: skip
    return predict_images(spectrum, batch, ewald=Ewald() if s.ewald else None)


def _heterogeneous_images(spectra, batch: ParticleBatch, s: SimulationSettings,
                          conformations: Conformations) -> torch.Tensor:  # fmt: skip
    """Each particle's image from its state's volume, or the blend of its two frames'."""
    n = batch.image_size
    clean = torch.zeros((len(batch), n, n), dtype=batch.dtype, device=batch.device)
    state = torch.as_tensor(conformations.state, device=batch.device)
    blend = torch.as_tensor(conformations.blend, dtype=batch.dtype, device=batch.device)
    for k in torch.unique(state).tolist():
        pick = state == k
        part = batch.subset(pick)
        w = blend[pick][:, None, None]
        images = _clean_images(spectra[k], part, s)
        if bool((w > 0).any()):
            images = (1 - w) * images + w * _clean_images(spectra[k + 1], part, s)
        clean[pick] = images
    return clean


def simulate_images(spectrum, batch: ParticleBatch, s: SimulationSettings, first: int = 0,
                    conformations: Conformations | None = None):  # fmt: skip
    """Clean and noisy images (float64, on the batch's device) of a ``batch`` whose rows are
    particles ``first + batch.indices``; with ``conformations`` (the batch's rows), ``spectrum``
    is the list of the volumes' spectra (``simulate.conformations``)."""
    if conformations is None:
        clean = _clean_images(spectrum, batch, s)
    else:
        clean = _heterogeneous_images(spectrum, batch, s, conformations)
    start = first + int(batch.indices[0])
    generators = particle_generators(s.seed, start, start + len(batch))
    if s.snr is not None:
        noisy = add_white_noise(clean, s.snr, generator=generators)
    elif s.white_noise_sd is not None:
        noisy = clean + s.white_noise_sd * standard_normal(clean.shape, generators, clean.dtype,
                                                           clean.device)  # fmt: skip
    elif s.dose_e_per_a2 is not None:
        rms = clean.flatten(-2).std(-1)[..., None, None].clamp(min=1e-30)
        contrast = clean / rms * s.contrast_rms
        counts = shot_noise(contrast, s.dose_e_per_a2, s.pixel_size_angstrom, generator=generators)
        noisy = counts - s.dose_e_per_a2 * s.pixel_size_angstrom**2
    else:
        noisy = clean
    return clean, noisy
