"""Poisson log-likelihoods of counting images against pose hypotheses (the E-step's option for
counting data; ``imaging.poisson_log_likelihood`` per hypothesis, as batched linear algebra).

The images are counts minus ``N0 = dose * pixel^2`` (as ``simulate --dose`` writes them), the
prediction ``Y = C P`` is in the same units, so the expected counts are ``N0 + Y`` (contrast
``Y / N0``) and for image ``b``, projection ``r`` and shift ``t``

``log p = sum_j n_j log(N0 + (T_t Y_br)_j) - (N0 + (T_t Y_br)_j) - log(n_j!)``.

A shift commutes with a pointwise function, so the first sum is ``<T_-t n_b, log(N0 + Y_br)>``:
for each (image, projection) pair one real image ``log(N0 + Y_br)`` (an inverse FFT, a log, an
FFT), correlated with the counts at every shift of the lattice by one batched matrix product in
Fourier space (Parseval), like the Gaussian cross term; ``sum_j (T_t Y)_j`` is the prediction's
zero frequency. Exact for whole-pixel shifts; a sub-pixel shift interpolates ``log(N0 + Y)``
rather than ``Y``. The prediction keeps its zero frequency (the mean count is data here) and
the shells up to ``max_shell``; expected counts below ``1e-6 N0`` are clamped there (a contrast
of -1 or less has no Poisson likelihood).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import ParticleBatch

CHUNK_VALUES = 2**25  # real values of (image, projection) images made at once


def poisson_pose_scores(
    batch: ParticleBatch,
    projections: torch.Tensor,
    shifts_px: torch.Tensor,
    dose_e_per_a2: float,
    max_shell: int | None = None,
) -> torch.Tensor:
    """``(B, S, R)`` Poisson log-likelihoods of the batch's centred counting images for every
    shift ``shifts_px (S, 2)`` and projection ``projections ([B,] R, n, n // 2 + 1)`` (the
    layouts of ``gaussian_pose_scores``), at ``dose_e_per_a2`` (module docstring)."""
    n = batch.image_size
    if batch.spectra is None:
        raise InvalidInputError("pose scores need the batch's images")
    if not dose_e_per_a2 > 0:
        raise InvalidInputError(f"the dose must be positive, got {dose_e_per_a2} e/A^2")
    if projections.shape[-2:] != (n, n // 2 + 1) or projections.shape[:-3] not in (
        (), (len(batch),)
    ):  # fmt: skip
        raise InvalidInputError(
            f"projections must be ([{len(batch)},] R, {n}, {n // 2 + 1}), got "
            f"{tuple(projections.shape)}"
        )
    n0 = dose_e_per_a2 * batch.pixel_size_angstrom**2
    limit = n // 2 if max_shell is None else int(max_shell)
    device, dtype = batch.device, batch.dtype
    band = (shell_index((n, n), device=device) <= limit).to(dtype)
    m = hermitian_multiplicity((n, n), device=device, dtype=dtype).flatten()
    ctf = batch.ctf_values()
    ramp = phase_ramp((n, n), shifts_px.to(device, dtype), rfft=True).flatten(1)  # (S, K)
    counts = batch.images() + n0  # (B, n, n)
    constant = torch.lgamma(counts.clamp(min=0) + 1).sum((-1, -2))
    a = fft_nd(counts, 2, rfft=True).flatten(1).conj()[:, None] * ramp  # (B, S, K)
    a = torch.cat([a.real, -a.imag], -1) * torch.cat([m, m]) / n**2
    r = projections.shape[-3]
    step = max(1, CHUNK_VALUES // (r * n * n))
    out = []
    for start in range(0, len(batch), step):
        rows = slice(start, start + step)
        p = projections[rows] if projections.ndim == 4 else projections[None]
        p = p.to(device) * band
        if ctf is not None:
            p = p * ctf[rows, None].to(dtype)
        predicted = ifft_nd(p, (n, n), rfft=True)  # (b, R, n, n): Y
        log_rate = torch.log((n0 + predicted).clamp(min=1e-6 * n0))
        g = fft_nd(log_rate, 2, rfft=True).flatten(-2)
        g = torch.cat([g.real, g.imag], -1)  # (b or 1, R, 2K)
        cross = a[rows] @ g.transpose(-1, -2)  # (b, S, R)
        total = n * n * n0 + p[..., 0, 0].real  # sum_j (N0 + Y_j)
        out.append(cross - total[:, None, :])
    return torch.cat(out) - constant[:, None, None]
