"""The covariance of 3-D structure from images with known poses and CTFs (Katsevich, Katsevich
& Singer 2015), low rank by a randomised sketch of its columns (the idea RECOVAR uses, Gilles
& Singer 2024), without ever forming the ``N^3 x N^3`` matrix.

The least-squares covariance solves ``sum_i A_i^T A_i Sigma A_i^T A_i = sum_i A_i^T (r_i r_i^T
- N_i) A_i`` (``A_i = C_i P_i``, ``r_i = X_i - A_i mu``, noise covariance ``N_i``), whitened
by the noise (``heterogeneity.projected``). Two stages:

1. **The range, from columns.** With insertion's diagonal approximation of ``P^T D P``, column
   ``k'`` of ``Sigma`` in Fourier space is a weighted direct inversion: ``Sigma[k, k'] =
   sum_i conj(g_i(k')) g_i(k) / sum_i h_i(k') h_i(k)``, ``g_i`` the insertion of ``w C r``,
   ``h_i`` that of ``w C^2`` (``w = m / (2 sigma2)``), less the noise's bias ``2 w C^2`` where
   a sample meets itself. The real and imaginary parts of ``conj(g_i(k'))`` give ``Sigma``
   applied to a cosine and a sine wave of frequency ``k'``: two real volumes in its range.
   The frequencies are drawn (seeded, without replacement) with probability proportional to
   the variance there (the diagonal, from one insertion pass); each column is inverted from
   two halves of the particles (even and odd index) with the per-shell prior of their FSC
   (``reconstruction.invert``'s rule). Their span, masked, is an orthonormal basis ``U``.
2. **The exact problem in that span.** With ``Sigma = U S U^T`` the normal equations are
   ``sum_i G_i S G_i = sum_i (b_i b_i^T - G_i)`` (``G``, ``b`` of ``U`` 's projections): ``d^2``
   unknowns, one pass, no approximation of the projections. ``S = E L E^T`` gives the
   eigenvolumes ``U E`` and their variances ``L``; a last pass the latent coordinates, the
   posterior means (and standard deviations) under ``z ~ N(0, L)``.
3. **Refinement.** A column averages ``z z^T`` over the few images whose slices hold both of
   its frequencies, so beyond rank 1 it carries sampling noise outside the range (measured:
   columns 75-95 % inside the true span for 2,000 noiseless particles, principal angles of 5
   and 9 degrees from stage 2 alone; 1,000 would be needed per pair for 1 degree). ``refine``
   EM steps of the same low-rank Gaussian model (``heterogeneity.ppca``, started from stage
   2's eigenvolumes; its M-step inverts single slices, not pairs) remove it (1.4 and 3.1
   degrees after one step), and stage 2 is solved again in their span.

Passes over the particles: one for the diagonal, one per chunk of columns (their sums take
``2 x 5`` padded grids each; chunks keep them under 1 GiB), one for ``S``, one for the latents.
"""

from collections.abc import Callable, Iterable

import torch

from cryomath.errors import InvalidInputError
from cryomath.heterogeneity.ppca import PrincipalComponents, fit_principal_components
from cryomath.heterogeneity.projected import (
    default_mask,
    project_components,
    sample_weights,
    volume_spectra,
)
from cryomath.imaging import (
    FourierAccumulator,
    NoiseSpectrum,
    ParticleBatch,
    frequency_scale,
    predict_spectra,
)
from cryomath.projection import (
    accumulate_central_slices_rfft_3d,
    nyquist_samples,
    prepare_volume,
    slice_coordinates,
)
from cryomath.reconstruction import invert
from cryomath.resolution import fourier_shell_correlation

_CHUNK_BYTES = 2**30


def estimate_covariance(
    batches: Callable[[], Iterable[ParticleBatch]],
    mean: torch.Tensor,
    voxel_size_angstrom: float,
    noise: NoiseSpectrum,
    n_components: int = 2,
    columns: int | None = None,
    max_shell: int | None = None,
    mask: torch.Tensor | None = None,
    seed: int = 0,
    refine: int = 2,
    progress: Callable[[int], None] | None = None,
) -> PrincipalComponents:
    """The top ``n_components`` eigenvolumes of the covariance (module docstring) of the
    particles ``batches()`` yields (read once per pass) around the consensus ``mean (n, n,
    n)``; ``columns`` (default ``4 K + 4``) frequencies sketch the range; ``max_shell``
    (default ``n // 4``): the band limit; ``mask (n, n, n)`` (default: a sphere of radius
    ``0.45 n`` with a 3-voxel soft edge) multiplies the basis; ``refine`` EM steps (module
    docstring); ``progress(p)`` after each pass."""
    n = mean.shape[-1]
    columns = 4 * n_components + 4 if columns is None else columns
    max_shell = n // 4 if max_shell is None else max_shell
    if n_components < 1 or columns < n_components or max_shell < 2:
        raise InvalidInputError(
            f"need 1 <= components ({n_components}) <= columns ({columns}) and a band limit of "
            f"at least 2 shells (got {max_shell})"
        )
    if mask is None:
        mask = default_mask(mean)
    sketch = _Sketch(n, mean, voxel_size_angstrom, noise, max_shell)
    passes = 0

    def done():
        nonlocal passes
        passes += 1
        if progress is not None:
            progress(passes)

    targets = sketch.choose_frequencies(batches, columns, seed)
    done()
    volumes = []
    per_column = 10 * sketch.grid_bytes
    chunk = max(1, _CHUNK_BYTES // per_column)
    for start in range(0, len(targets), chunk):
        volumes.append(sketch.column_volumes(batches, targets[start : start + chunk]))
        done()
    basis = _orthonormal_basis(torch.cat(volumes) * mask)
    components, variances = _top(batches, sketch, basis, n_components)
    done()
    if refine > 0:
        initial = components * variances.clamp(min=0).sqrt()[:, None, None, None]
        refined = fit_principal_components(batches, mean, voxel_size_angstrom, noise,
                                           n_components, refine, max_shell, mask=mask,
                                           initial=initial, progress=lambda _: done())  # fmt: skip
        components, variances = _top(batches, sketch, refined.components, n_components)
        done()
    latent, latent_sd = _latent(batches, sketch, components, variances)
    done()
    return PrincipalComponents(components, variances, latent, latent_sd, mean, [])


class _Sketch:
    """The quantities every pass shares: the grid, the consensus spectrum, the noise, the band."""

    def __init__(self, n, mean, voxel, noise, max_shell):
        self.n, self.n_pad, self.voxel = n, 2 * n, voxel
        self.noise, self.max_shell = noise, max_shell
        self.dtype, self.device = mean.dtype, mean.device
        self.mean_spectrum = prepare_volume(mean, 2.0, voxel_size_angstrom=voxel)
        self.shape = (self.n_pad, self.n_pad, self.n_pad // 2 + 1)
        self.grid_bytes = torch.Size(self.shape).numel() * mean.element_size()

    def samples(self, batch: ParticleBatch):
        """The batch's kept rfft samples (``projection.nyquist_samples``): their flat indices,
        padded-grid positions ``(B, S, 3)`` after the Friedel flip and signs ``(B, S)``, and per
        sample ``w C r`` (origins undone) and ``w C^2`` ``(B, S)``."""
        n = batch.image_size
        scale = frequency_scale(self.voxel, batch)
        k, keep = nyquist_samples(n, scale, batch.dtype, batch.device, self.max_shell)
        position, sign = slice_coordinates(batch.rotations, k, self.n_pad, frequency_scale=scale)
        w = sample_weights(batch, self.noise, self.max_shell)
        residual = batch.centred(batch.spectra - predict_spectra(self.mean_spectrum, batch))
        ctf = batch.ctf_values()
        ctf = torch.ones_like(w) if ctf is None else ctf
        data = (ctf * w * residual).flatten(-2)[..., keep]
        weight = (ctf * ctf * w).flatten(-2)[..., keep].expand_as(sign)
        return keep, position, sign, data, weight

    def insert(self, sums, batch, keep, slices, weights, select):
        """Insert the kept samples ``slices (B, L, S)`` and ``weights (B, W, S)`` of the images
        ``select`` into ``sums (1, 2 L + W, *shape)``."""
        n = batch.image_size
        full = torch.zeros((int(select.sum()), slices.shape[1], n * (n // 2 + 1)),
                           dtype=slices.dtype, device=slices.device)  # fmt: skip
        full[..., keep] = slices[select]
        grid = torch.zeros((*full.shape[:1], weights.shape[1], full.shape[-1]),
                           dtype=weights.dtype, device=weights.device)  # fmt: skip
        grid[..., keep] = weights[select]
        accumulate_central_slices_rfft_3d(
            sums, full.unflatten(-1, (n, n // 2 + 1)), batch.rotations[select],
            grid.unflatten(-1, (n, n // 2 + 1)), frequency_scale=frequency_scale(self.voxel, batch),
            max_shell=self.max_shell,
        )  # fmt: skip

    def choose_frequencies(self, batches, count: int, seed: int) -> torch.Tensor:
        """``count`` padded-grid positions ``(x, y, z)`` of integer frequencies ``1 <= |k| <
        max_shell`` with ``k_x >= 1``, drawn with probability proportional to the estimated
        variance there (``(|w C r|^2 - 2 w C^2) / (w C^2)^2`` inserted)."""
        sums = torch.zeros((1, 3, *self.shape), dtype=self.dtype, device=self.device)
        for batch in batches():
            keep, _, _, data, weight = self.samples(batch)
            power = (data.abs() ** 2 - 2 * weight).to(data.dtype)[:, None]
            self.insert(sums, batch, keep, power, (weight * weight)[:, None],
                        torch.ones(len(data), dtype=torch.bool, device=data.device))  # fmt: skip
        variance = torch.where(sums[0, 2] > 0, sums[0, 0] / sums[0, 2].clamp(min=1e-300), 0)
        f = torch.arange(-(self.n // 2), self.n // 2, device=self.device)
        fz, fy, fx = torch.meshgrid(f, f, f.clamp(min=0).unique(), indexing="ij")
        radius = torch.sqrt((fx * fx + fy * fy + fz * fz).double())
        candidate = (fx >= 1) & (radius.round() >= 1) & (radius.round() < self.max_shell)
        x, y, z = 2 * fx[candidate], 2 * fy[candidate] + self.n, 2 * fz[candidate] + self.n
        p = variance[z, y, x].clamp(min=0).cpu()
        if int((p > 0).sum()) < count:
            raise InvalidInputError(f"fewer than {count} frequencies show any variance")
        g = torch.Generator().manual_seed(seed)
        chosen = torch.multinomial(p, count, replacement=False, generator=g).to(self.device)
        return torch.stack([x[chosen], y[chosen], z[chosen]], -1).to(self.dtype)

    def column_volumes(self, batches, targets: torch.Tensor) -> torch.Tensor:
        """The real volumes ``(2 M, n, n, n)``: ``Sigma`` applied to the cosine and the sine wave
        of each frequency at ``targets (M, 3)`` (module docstring)."""
        m = len(targets)
        sums = torch.zeros((m, 2, 1, 5, *self.shape), dtype=self.dtype, device=self.device)
        for batch in batches():
            keep, position, sign, data, weight = self.samples(batch)
            half = batch.indices.to(data.device) % 2
            for j, target in enumerate(targets):
                near = (1 - (position - target).abs()).clamp(min=0).prod(-1)  # (B, S)
                hit = (near > 0).any(-1)
                if not bool(hit.any()):
                    continue
                landed = torch.complex(data.real, data.imag * sign)
                s = (near * landed).sum(-1).conj()[:, None]
                bias = near * weight  # half the noise's 2 w C^2, in each of the two parts
                slices = torch.stack([data * s.real - bias, data * s.imag + 1j * sign * bias], 1)
                weights = (weight * (near * weight).sum(-1, keepdim=True))[:, None]
                for h in (0, 1):
                    self.insert(sums[j, h], batch, keep, slices, weights, hit & (half == h))
        volumes = []
        for j in range(m):
            for part in (0, 1):
                channels = [2 * part, 2 * part + 1, 4]
                volumes.append(self._invert_halves(sums[j, :, :, channels]))
        return torch.stack(volumes)

    def _invert_halves(self, halves: torch.Tensor) -> torch.Tensor:
        """A column from its two halves' sums ``(2, 1, 3, *shape)``, regularised by their FSC."""
        accumulators = []
        for sums in (halves[0], halves[1], halves[0] + halves[1]):
            acc = FourierAccumulator(self.n, 2.0, self.dtype, self.device, self.voxel)
            acc.sums = sums
            accumulators.append(acc)
        one, two = (invert(acc, mask_radius_px=None) for acc in accumulators[:2])
        fsc = fourier_shell_correlation(one, two).fsc
        return invert(accumulators[2], half_map_fsc=fsc, mask_radius_px=None)


def _orthonormal_basis(volumes: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis ``(d, n, n, n)`` of the span of ``volumes (M, n, n, n)``, each scaled
    to unit norm first (columns differ in scale by the variance at their frequency)."""
    flat = volumes.flatten(1)
    flat = flat / torch.linalg.vector_norm(flat, dim=1, keepdim=True).clamp(min=1e-300)
    _, values, rows = torch.linalg.svd(flat, full_matrices=False)
    keep = values > 1e-6 * values[0]
    return rows[keep].reshape(-1, *volumes.shape[1:])


def _projected_covariance(batches, sketch: _Sketch, basis: torch.Tensor):
    """The eigenvalues and eigenvectors ``(d,), (d, d)`` of ``S``, the covariance in the
    ``basis`` 's coordinates: ``sum_i G_i S G_i = sum_i (b_i b_i^T - G_i)`` solved for ``S``."""
    d = basis.shape[0]
    spectra = volume_spectra(basis, sketch.voxel)
    lhs = torch.zeros((d * d, d * d), dtype=basis.dtype, device=basis.device)
    rhs = torch.zeros((d, d), dtype=basis.dtype, device=basis.device)
    for batch in batches():
        seen = project_components(batch, sketch.mean_spectrum, spectra, sketch.noise,
                                  sketch.max_shell)  # fmt: skip
        # G symmetric: vec(G S G) = (G (x) G) vec(S)
        lhs += torch.einsum("bik,bjl->ijkl", seen.gram, seen.gram).reshape(d * d, d * d)
        rhs += torch.einsum("bk,bl->kl", seen.b, seen.b) - seen.gram.sum(0)
    ridge = 1e-10 * float(lhs.diagonal().mean())
    s = torch.linalg.solve(lhs + ridge * torch.eye(d * d, dtype=lhs.dtype, device=lhs.device),
                           rhs.flatten()).reshape(d, d)  # fmt: skip
    return torch.linalg.eigh((s + s.T) / 2)


def _top(batches, sketch: _Sketch, basis: torch.Tensor, k: int):
    """The ``k`` eigenvolumes ``(k, n, n, n)`` of largest variance in the span of the
    orthonormal ``basis``, and their variances."""
    variances, vectors = _projected_covariance(batches, sketch, basis)
    order = variances.argsort(descending=True)[:k]
    return torch.einsum("dk,dzyx->kzyx", vectors[:, order], basis), variances[order]


def _latent(batches, sketch: _Sketch, components: torch.Tensor, variances: torch.Tensor):
    """Posterior means and standard deviations ``(N, K)`` of each particle's coordinates along
    the unit ``components`` under the prior ``N(0, diag(variances))``."""
    spectra = volume_spectra(components, sketch.voxel)
    prior = torch.diag(1 / variances.clamp(min=1e-12 * float(variances.abs().max())))
    rows, means, sds = [], [], []
    for batch in batches():
        seen = project_components(batch, sketch.mean_spectrum, spectra, sketch.noise,
                                  sketch.max_shell)  # fmt: skip
        covariance = torch.linalg.inv(prior + seen.gram)
        means.append((covariance @ seen.b[..., None])[..., 0])
        sds.append(covariance.diagonal(dim1=-2, dim2=-1).clamp(min=0).sqrt())
        rows.append(batch.indices)
    order = torch.cat(rows).argsort()
    return torch.cat(means)[order], torch.cat(sds)[order]
