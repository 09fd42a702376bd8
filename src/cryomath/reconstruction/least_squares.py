"""Least-squares reconstruction by conjugate gradients on the normal equations (the approach of
ASPIRE's ``MeanEstimator``): minimise ``sum_i ||C_i P_i x - y_i||^2 + lam ||x||^2`` over the
real-space volume x, where ``P_i`` is the Fourier-slice projector (``projection``) and ``C_i``
the CTF. The normal operator ``sum P_i^T C_i^2 P_i + lam`` is applied exactly, with the adjoint
from autograd, one batch of particles at a time. Stopping rule: the residual norm falls below
``tolerance`` times the right-hand side's, or ``max_iterations``.
Each iteration costs one projection and one back-projection of every particle, so it is slower
than direct inversion; it needs no density compensation and no gridding correction.
"""

from collections.abc import Callable

import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.fourier.masks import spherical_mask
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.reconstruction.direct import centred_spectra


def _slices(volume, rotations, pad_factor):
    return extract_central_slices_rfft_3d(prepare_volume(volume, pad_factor), rotations)


def reconstruct_least_squares(
    images: torch.Tensor,
    rotations: torch.Tensor,
    pixel_size_angstrom: float,
    shifts_px: torch.Tensor | None = None,
    ctf: CTF | None = None,
    pad_factor: float = 2.0,
    regularization: float = 1e-3,
    tolerance: float = 1e-3,
    max_iterations: int = 50,
    batch_size: int = 256,
    callback: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """``(n, n, n)`` least-squares map of in-memory ``(P, n, n)`` images. ``regularization``
    is ``lam`` relative to the mean diagonal of the normal operator (estimated from the data)."""
    n = images.shape[-1]
    dtype = images.dtype
    spectra = centred_spectra(images, shifts_px)
    ctf_values = None if ctf is None else compute_ctf(ctf, (n, n), pixel_size_angstrom).to(dtype)
    batches = [slice(i, i + batch_size) for i in range(0, images.shape[0], batch_size)]

    def adjoint(weighted_slices, batch):
        x = torch.zeros((n, n, n), dtype=dtype, requires_grad=True)
        y = _slices(x, rotations[batch], pad_factor)
        (grad,) = torch.autograd.grad((y * weighted_slices.conj()).real.sum(), x)
        return grad

    def normal(x):
        out = torch.zeros_like(x)
        for batch in batches:
            with torch.no_grad():
                y = _slices(x, rotations[batch], pad_factor)
            if ctf_values is not None:
                y = y * ctf_values[batch] ** 2
            out += adjoint(y, batch)
        return out

    b = torch.zeros((n, n, n), dtype=dtype)
    for batch in batches:
        y = spectra[batch] if ctf_values is None else spectra[batch] * ctf_values[batch]
        b += adjoint(y, batch)
    # lam relative to the operator's scale: <e, A e> for a unit impulse at the centre
    impulse = torch.zeros_like(b)
    impulse[n // 2, n // 2, n // 2] = 1
    lam = regularization * float(normal(impulse)[n // 2, n // 2, n // 2])

    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = float((r * r).sum())
    b_norm = rs**0.5
    for iteration in range(max_iterations):
        ap = normal(p) + lam * p
        alpha = rs / float((p * ap).sum())
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float((r * r).sum())
        if callback is not None:
            callback(iteration, rs_new**0.5 / b_norm)
        if rs_new**0.5 <= tolerance * b_norm:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    # the same soft spherical mask as direct inversion (the corners hold only noise)
    return x * spherical_mask((n, n, n), n / 2, 3.0, dtype=dtype, device=x.device)
