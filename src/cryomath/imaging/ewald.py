"""The forward model and its adjoint on the Ewald sphere (``ctf.ewald``): an image is
``H V(+c) + conj(H) V(-c)``, two single side-bands on curved slices of opposite curvature.

Insertion puts ``conj(H) X`` on the ``+c`` sphere and ``H X`` on the ``-c`` one. Each holds the
wanted side-band, ``|H|^2 V(+c)``, and a cross term, ``conj(H)^2 V(-c)``: the other side-band
propagated by twice the defocus, so displaced by ``2 R(k)`` (``ctf.delocalisation``). With
``mask_diameter_angstrom`` the full-plane complex image ``conj(H) X`` is masked in real space
around the particle, as RELION's ``relion_reconstruct --ewald --mask_diameter`` does: what of
the cross term is moved outside the mask is cut. The weights of each insertion are
``|H|^2 + a m Re(H^2)``: ``m`` the share of the cross term the mask keeps (the overlap of two
discs of the mask's diameter ``2 R(k)`` apart, the rule of RELION's
``CTF::applyWeightEwaldSphereCurvature``; 1 without a mask), ``a`` the overlap of the two
spheres' trilinear kernels (``1 - 2 |c| k^2 n_pad``, clamped at 0): where the spheres meet
within a voxel, the two insertions' kept cross terms add up with the wanted ones to the flat
``CTF^2``; where they are apart, the cross term varies in phase with defocus and orientation
and averages out, leaving ``|H|^2``.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.ctf.delocalisation import delocalisation_radius_angstrom
from cryomath.ctf.ewald import ewald_curvature, single_sideband_ctf
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.masks import spherical_mask
from cryomath.imaging.batch import ParticleBatch


@dataclass(frozen=True)
class Ewald:
    """Curved slices: ``curvature_sign`` +1 is RELION's curvature, -1 its
    ``--reverse_curvature`` (and what a map of the other hand needs); insertion masks the
    side-bands to ``mask_diameter_angstrom`` when given (module docstring)."""

    curvature_sign: int = 1
    mask_diameter_angstrom: float | None = None

    def __post_init__(self) -> None:
        if self.curvature_sign not in (1, -1):
            raise InvalidInputError(f"curvature_sign must be 1 or -1, got {self.curvature_sign}")
        if self.mask_diameter_angstrom is not None and not self.mask_diameter_angstrom > 0:
            raise InvalidInputError("the Ewald mask diameter must be positive")


def sidebands(batch: ParticleBatch, ewald: Ewald, ctf_sign: str = "relion"):
    """The signed curvature ``c`` (cycles/pixel) and the side-band transfer ``H`` ``(B, n,
    n // 2 + 1)`` of a batch (``ctf.ewald``)."""
    if batch.ctf is None:
        raise InvalidInputError("Ewald-sphere curvature needs the images' CTF (its voltage)")
    n, pixel = batch.image_size, batch.pixel_size_angstrom
    c = ewald_curvature(batch.ctf, pixel, ewald.curvature_sign)
    h = single_sideband_ctf(batch.ctf, (n, n), pixel, ctf_sign)
    return c, h.to(complex_dtype(batch.dtype))


def sideband_data(centred: torch.Tensor, batch: ParticleBatch, ewald: Ewald, h: torch.Tensor):
    """The spectra to insert at ``+c`` and ``-c``: ``conj(H) X`` and ``H X`` ``(B, ..., n,
    n // 2 + 1)`` for centred spectra ``X`` and ``h`` broadcastable to them; masked in real
    space when ``ewald`` has a mask (module docstring)."""
    if ewald.mask_diameter_angstrom is None:
        return centred * h.conj(), centred * h
    n = batch.image_size
    full_h = single_sideband_ctf(batch.ctf, (n, n), batch.pixel_size_angstrom, rfft=False)
    full_h = full_h.to(centred.dtype).reshape(*h.shape[:-2], n, n)
    # the full-plane + side-band conj(H) X of the real image: its kx < 0 half, mirrored and
    # conjugated, is the - side-band H X (X(-k) = conj X(k), H even)
    full = torch.fft.fft2(torch.fft.irfft2(centred, s=(n, n))) * full_h.conj()
    image = torch.fft.fftshift(torch.fft.ifft2(full), dim=(-2, -1))
    radius = ewald.mask_diameter_angstrom / (2 * batch.pixel_size_angstrom)
    mask = spherical_mask((n, n), radius, 3.0, dtype=batch.dtype, device=batch.device)
    full = torch.fft.fft2(torch.fft.ifftshift(image * mask, dim=(-2, -1)))
    plus = full[..., : n // 2 + 1]
    mirror = (-torch.arange(n, device=full.device)) % n
    minus = full[..., mirror, :][..., (-torch.arange(n // 2 + 1, device=full.device)) % n].conj()
    return plus, minus


def sideband_weights(h: torch.Tensor, c: float, batch: ParticleBatch, ewald: Ewald,
                     n_pad: int, frequency_scale: float) -> torch.Tensor:  # fmt: skip
    """``|H|^2 + a m Re(H^2)`` ``(B, n, n // 2 + 1)``, the weight of each side-band insertion
    into a volume padded to ``n_pad`` (module docstring)."""
    n = batch.image_size
    k = fftfreq_grid((n, n), rfft=True, dtype=batch.dtype, device=batch.device)
    k2 = k.square().sum(-1)
    coherent = (1 - 2 * abs(c) * k2 * n_pad * frequency_scale).clamp(min=0)
    if ewald.mask_diameter_angstrom is not None:
        coherent = coherent * _mask_overlap(batch, k2.sqrt(), ewald.mask_diameter_angstrom)
    return h.real**2 + h.imag**2 + coherent * (h * h).real


def _mask_overlap(batch: ParticleBatch, k_px: torch.Tensor, diameter_angstrom: float):
    """The overlap of two discs of ``diameter_angstrom`` whose centres are ``2 R(k)`` apart
    (each image's mean defocus), as a share of one disc: ``(B, n, n // 2 + 1)``."""
    ctf = batch.ctf
    defocus = ((ctf.defocus_u_angstrom + ctf.defocus_v_angstrom) / 2)[:, None, None]
    k = k_px / batch.pixel_size_angstrom
    voltage = float(ctf.voltage_kv.reshape(-1)[0])
    shift = 2 * delocalisation_radius_angstrom(
        k, defocus, float(ctf.spherical_aberration_mm.reshape(-1)[0]), voltage
    )
    a = (shift / diameter_angstrom).clamp(max=1).to(batch.dtype)
    return (2 / math.pi) * (torch.acos(a) - a * torch.sqrt(1 - a * a))
