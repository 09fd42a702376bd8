"""HEALPix pixel centres (Gorski et al., ApJ 622:759, 2005) in torch, RING and NEST orderings,
for ``nside`` a power of two. Returns colatitude ``theta`` in ``[0, pi]`` and longitude ``phi``
in ``[0, 2 pi)`` (radians), equal to healpy's ``pix2ang`` (tested)."""

import math

import torch

from cryomath.errors import InvalidInputError

# Base-pixel ring and longitude offsets of the 12 faces (Gorski et al. 2005, Fig. 4).
_FACE_RING = (2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4)
_FACE_PHI = (1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7)


def _check_nside(nside: int) -> int:
    if nside < 1 or nside & (nside - 1):
        raise InvalidInputError(f"nside must be a power of two, got {nside}")
    return nside.bit_length() - 1


def healpix_pixel_centres(
    nside: int, nest: bool = True, dtype: torch.dtype = torch.float64, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(theta, phi)`` of all ``12 nside^2`` pixels, each ``(12 nside^2,)``, in pixel order."""
    order = _check_nside(nside)
    pix = torch.arange(12 * nside * nside, device=device, dtype=torch.int64)
    if nest:
        return _nest(pix, nside, order, dtype)
    return _ring(pix, nside, dtype)


def healpix_nest_centres(
    nside: int, pixels: torch.Tensor, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(theta, phi)`` of the NEST ``pixels`` (a long tensor of any shape) without making the
    whole grid (a hierarchical search's children at fine orders)."""
    order = _check_nside(nside)
    if pixels.numel() and not (0 <= int(pixels.min()) and int(pixels.max()) < 12 * nside**2):
        raise InvalidInputError(f"HEALPix NEST pixels of nside {nside} are in [0, {12 * nside**2})")
    theta, phi = _nest(pixels.reshape(-1), nside, order, dtype)
    return theta.view(pixels.shape), phi.view(pixels.shape)


def _ring(pix: torch.Tensor, nside: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    npix, ncap = 12 * nside * nside, 2 * nside * (nside - 1)
    fact2 = 4.0 / npix
    fact1 = 2 * nside * fact2
    z = torch.empty(pix.shape, dtype=torch.float64, device=pix.device)
    phi = torch.empty_like(z)
    north, south = pix < ncap, pix >= npix - ncap
    equator = ~(north | south)
    # north polar cap: ring i = (1 + isqrt(1 + 2p)) / 2, counted from the pole
    p = pix[north]
    ring = (1 + torch.sqrt(1 + 2 * p.to(torch.float64)).floor().long()) // 2
    iphi = (p + 1 - 2 * ring * (ring - 1)).double()
    ring = ring.double()
    z[north] = 1 - ring * ring * fact2
    phi[north] = (iphi - 0.5) * (math.pi / 2) / ring
    # equatorial belt
    p = pix[equator] - ncap
    ring = p // (4 * nside) + nside
    iphi = (p % (4 * nside) + 1).double()
    half = torch.where((ring + nside) % 2 == 1, 1.0, 0.5)
    z[equator] = (2 * nside - ring).double() * fact1
    phi[equator] = (iphi - half) * (math.pi / 2) / nside
    # south polar cap, mirrored
    p = npix - pix[south]
    ring = (1 + torch.sqrt(2 * p.to(torch.float64) - 1).floor().long()) // 2
    iphi = (4 * ring + 1 - (p - 2 * ring * (ring - 1))).double()
    ring = ring.double()
    z[south] = ring * ring * fact2 - 1
    phi[south] = (iphi - 0.5) * (math.pi / 2) / ring
    return torch.acos(z).to(dtype), phi.to(dtype)


def _compress_bits(v: torch.Tensor, order: int) -> torch.Tensor:
    """Every other bit of ``v`` (bits 0, 2, 4, ...) packed together."""
    out = torch.zeros_like(v)
    for b in range(order):
        out |= ((v >> (2 * b)) & 1) << b
    return out


def _nest(pix: torch.Tensor, nside: int, order: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    face = pix >> (2 * order)
    within = pix & (nside * nside - 1)
    ix, iy = _compress_bits(within, order), _compress_bits(within >> 1, order)
    face_ring = torch.tensor(_FACE_RING, device=pix.device)[face]
    face_phi = torch.tensor(_FACE_PHI, device=pix.device)[face]
    jr = face_ring * nside - ix - iy - 1  # ring number in 1 .. 4 nside - 1
    fact2 = 4.0 / (12 * nside * nside)
    north, south = jr < nside, jr > 3 * nside
    nr = torch.where(north, jr, torch.where(south, 4 * nside - jr, torch.full_like(jr, nside)))
    jr_f, nr_f = jr.double(), nr.double()
    z = torch.where(
        north,
        1 - nr_f * nr_f * fact2,
        torch.where(south, nr_f * nr_f * fact2 - 1, (2 * nside - jr_f) * 2 * nside * fact2),
    )
    kshift = torch.where(north | south, 0, (jr - nside) & 1)
    jp = (face_phi * nr + ix - iy + 1 + kshift) // 2
    jp = torch.where(jp > 4 * nside, jp - 4 * nside, jp)
    jp = torch.where(jp < 1, jp + 4 * nside, jp)
    phi = (jp.double() - (kshift + 1) * 0.5) * (math.pi / 2) / nr_f
    return torch.acos(z.to(dtype)), phi.to(dtype)
