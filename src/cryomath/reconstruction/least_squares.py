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
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.devices import Staging
from cryomath.fourier.masks import spherical_mask
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.reconstruction.direct import centred_spectra


class _Batch(NamedTuple):
    rotations: torch.Tensor  # (k, 3, 3)
    ctf: CTF | None  # batch (k,)
    spectra: Callable[[], torch.Tensor]  # centred rfft spectra (k, n, n // 2 + 1), on demand


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
    """``(n, n, n)`` least-squares map of in-memory ``(P, n, n)`` images (on their device).
    ``regularization`` is ``lam`` relative to the mean diagonal of the normal operator
    (estimated from the data)."""
    batches = []
    for i in range(0, images.shape[0], batch_size):
        s = slice(i, i + batch_size)
        shifts = None if shifts_px is None else shifts_px[s]
        batches.append(_Batch(
            rotations[s].to(images.dtype), None if ctf is None else ctf.subset(s),
            lambda s=s, shifts=shifts: centred_spectra(images[s], shifts),
        ))  # fmt: skip
    return _solve(
        batches, images.shape[-1], pixel_size_angstrom, pad_factor, images.dtype, images.device,
        regularization, tolerance, max_iterations, callback,
    )  # fmt: skip


def reconstruct_least_squares_particles(
    table,
    pad_factor: float = 2.0,
    use_ctf: bool = True,
    regularization: float = 1e-3,
    tolerance: float = 1e-3,
    max_iterations: int = 50,
    batch_size: int = 256,
    dtype=torch.float64,
    device: str | torch.device | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """The least-squares map of the particles of a :class:`cryomath.io.ParticleTable`, on
    ``device``; the images are read once, in batches of ``batch_size`` (for the right-hand
    side; the normal operator needs only the poses and CTFs), so memory does not grow with the
    number of particles beyond their metadata."""
    table.require("rotations", "image_paths", "pixel_size_angstrom", purpose="reconstruction")
    if use_ctf:
        table.require("ctf", purpose="reconstruction with CTF")
    staging = Staging(device)
    pixel = float(table.pixel_size_angstrom[0])
    batches = []
    for i in range(0, table.n, batch_size):
        sub = table.subset(np.arange(i, min(i + batch_size, table.n)))

        def spectra(sub=sub):
            images = staging.to_device(sub.read_images(np.arange(sub.n))).to(dtype)
            origins = sub.origins_angstrom
            shifts = None if origins is None else -staging.to_device(origins).to(dtype) / pixel
            return centred_spectra(images, shifts)

        ctf = CTF.from_parameters(sub.ctf, dtype=dtype, device=staging.device) if use_ctf else None
        batches.append(_Batch(staging.to_device(sub.rotations).to(dtype), ctf, spectra))
    n = int(table.image_size[0]) if table.image_size is not None else batches[0].spectra().shape[-2]
    return _solve(
        batches, n, pixel, pad_factor, dtype, staging.device, regularization, tolerance,
        max_iterations, callback,
    )  # fmt: skip


def _solve(batches, n, pixel_size_angstrom, pad_factor, dtype, device, regularization, tolerance,
           max_iterations, callback) -> torch.Tensor:  # fmt: skip
    """Conjugate gradients on the normal equations; each batch's CTF is recomputed when needed
    (cheaper to hold than ``P`` rfft CTFs)."""

    def ctf_values(batch):
        return compute_ctf(batch.ctf, (n, n), pixel_size_angstrom).to(dtype)

    def adjoint(weighted):
        """``sum_b P_b^T s_b`` over ``(s_b, rotations_b)`` pairs: the slices go back into the
        prepared spectrum batch by batch, then once through the (linear) preparation."""
        x = torch.zeros((n, n, n), dtype=dtype, device=device, requires_grad=True)
        spectrum = prepare_volume(x, pad_factor)
        data = spectrum.data.detach().requires_grad_()
        prepared = replace(spectrum, data=data)
        grad_data = torch.zeros_like(data)
        for slices, rotations in weighted:
            y = extract_central_slices_rfft_3d(prepared, rotations)
            grad_data += torch.autograd.grad((y * slices.conj()).real.sum(), data)[0]
        return torch.autograd.grad(spectrum.data, x, grad_outputs=grad_data)[0]

    def normal(x):
        with torch.no_grad():
            prepared = prepare_volume(x, pad_factor)  # once, for every batch

        def weighted():
            for batch in batches:
                with torch.no_grad():
                    y = extract_central_slices_rfft_3d(prepared, batch.rotations)
                if batch.ctf is not None:
                    y = y * ctf_values(batch) ** 2
                yield y, batch.rotations

        return adjoint(weighted())

    def right_hand_side():
        for batch in batches:
            y = batch.spectra()
            yield (y if batch.ctf is None else y * ctf_values(batch)), batch.rotations

    b = adjoint(right_hand_side())
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
