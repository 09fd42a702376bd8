"""Least-squares reconstruction by conjugate gradients on the normal equations (the approach of
ASPIRE's ``MeanEstimator``): minimise ``sum_i ||F_i x - y_i||^2 + lam ||x||^2`` over the
real-space volume x, where ``F_i`` is the imaging layer's forward model (slice, CTF, shift) after
the volume preparation (``projection.prepare_volume``). The normal operator
``sum F_i^T F_i + lam`` is applied exactly, one batch of particles at a time: the adjoint is
``imaging.insert_spectra`` followed by the adjoint of the (linear) preparation, by autograd.
``lam`` is ``regularization`` times ``<e, N e>`` for a unit impulse ``e`` at the centre (the
operator's scale). Stopping rule: the residual norm falls below ``tolerance`` times the
right-hand side's, or ``max_iterations``.
Each iteration costs one projection and one back-projection of every particle, so it is slower
than direct inversion; it needs no density compensation and no gridding correction. The
objective is the real-space one: Fourier samples count with their Hermitian multiplicity.
"""

from collections.abc import Callable, Iterable

import numpy as np
import torch

from cryomath.ctf import CTF
from cryomath.fourier.masks import spherical_mask
from cryomath.imaging import (
    FourierAccumulator,
    ParticleBatch,
    frequency_scale,
    insert_spectra,
    iter_batches,
    transfer_power,
)
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.reconstruction.direct import volume_grid
from cryomath.reconstruction.halves import HalfMaps, half_subsets
from cryomath.resolution import fourier_shell_correlation

Callback = Callable[[int, float], None] | None


class NormalEquations:
    """``N x = sum F_i^T F_i x`` and ``b = sum F_i^T y_i`` for the particles of ``poses``
    (batches, with or without images), on an ``n``-voxel map of ``voxel_size_angstrom``."""

    def __init__(
        self, poses: list[ParticleBatch], n, voxel_size_angstrom, pad_factor, dtype, device
    ):
        self.poses, self.n, self.voxel_size_angstrom = poses, n, voxel_size_angstrom
        self.pad_factor, self.dtype, self.device = pad_factor, dtype, device

    def _back(self, acc: FourierAccumulator) -> torch.Tensor:
        """The adjoint of ``prepare_volume`` applied to an accumulated spectrum."""
        n = self.n
        x = torch.zeros((n, n, n), dtype=self.dtype, device=self.device, requires_grad=True)
        spectrum = prepare_volume(x, self.pad_factor)
        grad = acc.sums[:, :2]
        return torch.autograd.grad(spectrum.data, x, grad_outputs=grad)[0]

    def _accumulator(self) -> FourierAccumulator:
        return FourierAccumulator(self.n, self.pad_factor, self.dtype, self.device,
                                  self.voxel_size_angstrom, with_weights=False)  # fmt: skip

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``N x``: per batch ``P^T (w CTF^2 |ramp|^2) P x``, the same as
        ``insert_spectra(predict_spectra(x))`` with the CTF and the shift evaluated once."""
        with torch.no_grad():
            prepared = prepare_volume(
                x, self.pad_factor, voxel_size_angstrom=self.voxel_size_angstrom
            )
            acc = self._accumulator()
            for batch in self.poses:
                scale = frequency_scale(self.voxel_size_angstrom, batch)
                slices = extract_central_slices_rfft_3d(
                    prepared, batch.rotations, image_size=batch.image_size,
                    frequency_scale=scale,
                )  # fmt: skip
                gain = transfer_power(batch) * batch.weights[:, None, None]
                acc.add(slices * gain, gain, batch.rotations, scale)
        return self._back(acc)

    def right_hand_side(self, with_images: Iterable[ParticleBatch]) -> torch.Tensor:
        acc = self._accumulator()
        for batch in with_images:
            insert_spectra(acc, batch.spectra, batch)
        return self._back(acc)

    def scale(self) -> float:
        """``<e, N e>`` for a unit impulse at the centre."""
        c = self.n // 2
        impulse = torch.zeros((self.n,) * 3, dtype=self.dtype, device=self.device)
        impulse[c, c, c] = 1
        return float(self.apply(impulse)[c, c, c])


def conjugate_gradients(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    lam: float,
    tolerance: float,
    max_iterations: int,
    callback: Callback = None,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve ``(N + lam) x = b`` from ``initial`` (default zeros), ``N = apply`` symmetric
    positive semi-definite; the result carries the soft spherical mask of direct inversion (the
    corners hold only noise)."""
    x = torch.zeros_like(b) if initial is None else initial.to(b)
    r = b.clone() if initial is None else b - (apply(x) + lam * x)
    p = r.clone()
    rs = float((r * r).sum())
    b_norm = float((b * b).sum()) ** 0.5
    for iteration in range(max_iterations):
        ap = apply(p) + lam * p
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
    n = b.shape[-1]
    return x * spherical_mask((n, n, n), n / 2, 3.0, dtype=b.dtype, device=x.device)


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
    callback: Callback = None,
) -> torch.Tensor:
    """``(n, n, n)`` least-squares map of in-memory ``(P, n, n)`` images (on their device)."""
    batches = []
    for i in range(0, images.shape[0], batch_size):
        s = slice(i, i + batch_size)
        batches.append(ParticleBatch.from_tensors(
            images[s], rotations[s], pixel_size_angstrom,
            None if shifts_px is None else shifts_px[s], None if ctf is None else ctf.subset(s),
        ))  # fmt: skip
    normal = NormalEquations(batches, images.shape[-1], None, pad_factor, images.dtype,
                             images.device)  # fmt: skip
    b = normal.right_hand_side(batches)
    lam = regularization * normal.scale()
    return conjugate_gradients(normal.apply, b, lam, tolerance, max_iterations, callback)


def _normal_equations(table, pad_factor, use_ctf, batch_size, dtype, device, rows=None):
    table.require("rotations", "image_paths", "pixel_size_angstrom", purpose="reconstruction")
    options = {"use_ctf": use_ctf, "rows": rows}
    poses = list(iter_batches(table, batch_size, device, dtype, read_images=False, **options))
    n, voxel = volume_grid(table)
    normal = NormalEquations(poses, n, voxel, pad_factor, dtype, poses[0].device)
    return normal, lambda: iter_batches(table, batch_size, device, dtype, **options)


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
    callback: Callback = None,
) -> torch.Tensor:
    """The least-squares map of the particles of a :class:`cryomath.io.ParticleTable`, on
    ``device``, at the box and voxel size of ``reconstruction.volume_grid``; the images are read
    once, in batches of ``batch_size`` (for the right-hand side; the normal operator needs only
    the poses and CTFs), so memory does not grow with the number of particles beyond their
    metadata."""
    normal, with_images = _normal_equations(table, pad_factor, use_ctf, batch_size, dtype, device)
    b = normal.right_hand_side(with_images())
    lam = regularization * normal.scale()
    return conjugate_gradients(normal.apply, b, lam, tolerance, max_iterations, callback)


def reconstruct_least_squares_halves(
    table,
    pad_factor: float = 2.0,
    use_ctf: bool = True,
    regularization: float = 1e-3,
    tolerance: float = 1e-3,
    max_iterations: int = 50,
    batch_size: int = 256,
    dtype=torch.float64,
    device: str | torch.device | None = None,
    split_seed: int = 0,
    callback: Callback = None,
) -> HalfMaps:
    """Gold-standard least squares: each half (``reconstruction.half_subsets``) solved on its
    own, their FSC, then the full map from the average of the halves (a warm start). The full
    problem is the sum of the halves' (``N = N1 + N2``, ``b = b1 + b2``), so the images are
    read once and the full solve costs one pass more than its iterations; the FSC measures the
    maps this method writes, and no direct inversion runs."""
    subset = half_subsets(table, split_seed)
    options = (pad_factor, use_ctf, batch_size, dtype, device)
    halves = [_normal_equations(table, *options, rows=np.flatnonzero(subset == h)) for h in (1, 2)]
    b = [normal.right_hand_side(with_images()) for normal, with_images in halves]
    scale = [normal.scale() for normal, _ in halves]
    maps = []
    for (normal, _), b_h, s in zip(halves, b, scale, strict=True):
        lam = regularization * s
        maps.append(
            conjugate_gradients(normal.apply, b_h, lam, tolerance, max_iterations, callback)
        )
    full = conjugate_gradients(
        lambda x: halves[0][0].apply(x) + halves[1][0].apply(x), b[0] + b[1],
        regularization * (scale[0] + scale[1]), tolerance, max_iterations, callback,
        initial=(maps[0] + maps[1]) / 2,
    )  # fmt: skip
    pixel = volume_grid(table)[1]
    return HalfMaps(maps[0], maps[1], full, fourier_shell_correlation(maps[0], maps[1], pixel),
                    pixel)  # fmt: skip
