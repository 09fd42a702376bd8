"""The contrast transfer function, batched over particles, on rfft or full Fourier grids.

``CTF(k) = -scale * E(k) * sin(gamma(k))`` with RELION's sign (``CTF(0) = +amplitude
contrast``, protein-positive images), where

``gamma = -pi lambda df k^2 + pi/2 Cs lambda^3 k^4 - phase_shift - atan(Q0 / sqrt(1 - Q0^2))``,
``df(theta) = (dU + dV)/2 + (dU - dV)/2 cos(2 (theta - angle))`` (underfocus positive, theta the
angle of k from the x axis), ``E = exp(-B k^2 / 4)`` times the optional coherence envelopes:
spatial ``exp(-(pi alpha)^2 (Cs lambda^2 k^3 - df k)^2)`` (source semi-angle alpha, radians) and
temporal ``exp(-(pi lambda delta)^2 k^4 / 2)`` (focal spread delta, Angstrom).
``sign="cistem"`` gives the CTFFIND/cisTEM/cryoJAX/cryoDRGN sign, ``CTF(0) = -Q0``.
Units: Angstrom, degrees, kV, mm (Cs), Angstrom^2 (B); k in 1/Angstrom.
"""

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from cryomath.ctf.wavelength import electron_wavelength_angstrom
from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.grids import fftfreq_grid

SIGNS = ("relion", "cistem")


@dataclass
class CTF:
    """Per-particle CTF parameters as tensors broadcast to a common batch shape ``(...)``."""

    defocus_u_angstrom: torch.Tensor
    defocus_v_angstrom: torch.Tensor
    defocus_angle_degrees: torch.Tensor
    voltage_kv: torch.Tensor
    spherical_aberration_mm: torch.Tensor
    amplitude_contrast: torch.Tensor
    phase_shift_degrees: torch.Tensor | float = 0.0
    bfactor_angstrom2: torch.Tensor | float = 0.0
    scale: torch.Tensor | float = 1.0

    def __post_init__(self) -> None:
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        # plain numbers join the tensors' device (and the first floating dtype among them)
        device = next((v.device for v in raw.values() if isinstance(v, torch.Tensor)), None)
        values = {name: torch.as_tensor(v, device=device) for name, v in raw.items()}
        dtype = next((v.dtype for v in values.values() if v.is_floating_point()), torch.float64)
        # numpy's rule, not torch.broadcast_shapes: that one imports sympy (0.6 s per process)
        try:
            shape = np.broadcast_shapes(*(tuple(v.shape) for v in values.values()))
        except ValueError as error:
            raise InvalidInputError(f"CTF parameters do not broadcast: {error}") from None
        for name, value in values.items():
            value = value.to(device, dtype)
            if not holds(torch.isfinite(value).all()):
                raise InvalidInputError(f"CTF {name} contains NaN or inf")
            setattr(self, name, value.expand(shape))
        _check_plausible(self)

    @classmethod
    def from_parameters(cls, params, dtype=torch.float64, device=None) -> "CTF":
        """From :class:`cryomath.io.CTFParameters` (read from STAR, .cs or cryoDRGN files)."""
        return cls(**{
            f.name: torch.tensor(np.array(getattr(params, f.name)), dtype=dtype, device=device)
            for f in fields(cls)
        })  # fmt: skip

    def subset(self, index) -> "CTF":
        return CTF(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _check_plausible(ctf: CTF) -> None:
    """Catch unit mistakes with a clear message (micrometres for Angstrom, Angstrom for mm)."""
    for name in ("defocus_u_angstrom", "defocus_v_angstrom"):
        df = getattr(ctf, name).abs()
        if not holds(~((df > 0) & (df < 50)).any()):
            raise InvalidInputError(
                f"{name} of {float(df[(df > 0) & (df < 50)][0]):g} is implausible: defocus is in "
                "Angstrom (1.5 um = 15000 A); did you pass micrometres?"
            )
    if not holds(~((ctf.voltage_kv < 10) | (ctf.voltage_kv > 3000)).any()):
        raise InvalidInputError("voltage must be in kV (10 - 3000)")
    if not holds(~((ctf.spherical_aberration_mm < 0) | (ctf.spherical_aberration_mm > 100)).any()):
        raise InvalidInputError("spherical aberration must be in mm (0 - 100)")
    if not holds(~((ctf.amplitude_contrast < 0) | (ctf.amplitude_contrast >= 1)).any()):
        raise InvalidInputError("amplitude contrast must be in [0, 1)")


def compute_ctf(
    ctf: CTF,
    image_shape: tuple[int, int],
    pixel_size_angstrom: float | torch.Tensor,
    rfft: bool = True,
    fftshift: bool = False,
    sign: str = "relion",
    source_semi_angle_rad: float = 0.0,
    focal_spread_angstrom: float = 0.0,
    wavelength_angstrom: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """``(..., h, w)`` CTF values (``w = W // 2 + 1`` for rfft) for CTF parameters of batch
    shape ``(...)``, on the Fourier grid of ``image_shape (h, w)`` (``fourier.grids`` layout).
    ``wavelength_angstrom`` overrides the exact relativistic wavelength (to match software
    that uses an approximate one)."""
    if sign not in SIGNS:
        raise InvalidInputError(f"sign must be one of {SIGNS}")
    dtype = ctf.defocus_u_angstrom.dtype
    device = ctf.defocus_u_angstrom.device
    k = fftfreq_grid(image_shape, rfft=rfft, fftshift=fftshift, dtype=dtype, device=device)
    pixel = torch.as_tensor(pixel_size_angstrom, dtype=dtype, device=device)[..., None, None]
    kx, ky = k[..., 0] / pixel, k[..., 1] / pixel  # 1/Angstrom
    k2 = kx * kx + ky * ky
    theta = torch.atan2(ky, kx)
    cos2, sin2 = torch.cos(2 * theta), torch.sin(2 * theta)

    def per_particle(value):
        return value[..., None, None]

    if wavelength_angstrom is None:
        lam = electron_wavelength_angstrom(ctf.voltage_kv)
    else:
        lam = torch.as_tensor(wavelength_angstrom, dtype=dtype, device=device)
        lam = lam.expand_as(ctf.voltage_kv)
    # gamma = k^2 (a + b cos 2theta + c sin 2theta) + d k^4 + e: five per-particle
    # coefficients times five grid features, one matrix product; only the sine runs per pixel
    half_sum = 0.5 * (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom)
    half_diff = 0.5 * (ctf.defocus_u_angstrom - ctf.defocus_v_angstrom)
    angle = 2 * torch.deg2rad(ctf.defocus_angle_degrees)
    q0 = ctf.amplitude_contrast
    cs = ctf.spherical_aberration_mm * 1e7
    coefficients = torch.stack(
        [
            -math.pi * lam * half_sum,
            -math.pi * lam * half_diff * torch.cos(angle),
            -math.pi * lam * half_diff * torch.sin(angle),
            0.5 * math.pi * cs * lam**3,
            -torch.deg2rad(ctf.phase_shift_degrees) - torch.atan(q0 / torch.sqrt(1 - q0 * q0)),
        ],
        -1,
    )  # (..., 5)
    features = torch.stack(
        [k2, k2 * cos2, k2 * sin2, k2 * k2, torch.ones_like(k2)], 0
    )  # (5, h, w), or (5, ..., h, w) with per-particle pixel sizes
    grid_shape = k2.shape[-2:]
    if features.ndim == 3:
        gamma = (coefficients.reshape(-1, 5) @ features.reshape(5, -1)).reshape(
            *coefficients.shape[:-1], *grid_shape
        )
    else:
        gamma = (per_particle(coefficients.movedim(-1, 0)) * features).sum(0)
    # -sin(gamma) = sin(-gamma): RELION's sign without an extra pass
    values = torch.sin(-gamma)
    if holds((ctf.scale != 1).any()):
        values = values * per_particle(ctf.scale)
    if holds((ctf.bfactor_angstrom2 != 0).any()):
        values = values * torch.exp(-per_particle(ctf.bfactor_angstrom2) * k2 / 4)
    if source_semi_angle_rad or focal_spread_angstrom:
        kk = torch.sqrt(k2)
        defocus = per_particle(half_sum) + per_particle(half_diff) * torch.cos(
            2 * theta - per_particle(angle)
        )
        lam = per_particle(lam)
        if source_semi_angle_rad:
            drift = per_particle(cs) * lam**2 * kk**3 - defocus * kk
            values = values * torch.exp(-((math.pi * source_semi_angle_rad) ** 2) * drift**2)
        if focal_spread_angstrom:
            values = values * torch.exp(
                -0.5 * (math.pi * lam * focal_spread_angstrom) ** 2 * k2 * k2
            )
    return values if sign == "relion" else -values
