"""The M-step's sums as dense linear algebra: every (image, shift) weighted into every shared
reference orientation by one matrix product per batch, inserted once per iteration.

For posterior weights ``W_bsr`` (``Posterior.weights``) of images ``X'_bs`` (each image with the
shift hypothesis ``s`` undone, as ``scores`` scores them) and CTFs ``C_b``,

``D_r = sum_bs W_bsr C_b X'_bs``  and  ``N_r = sum_bs W_bsr C_b^2``

are two matrix products, ``(R, B S) @ (B S, 2K)`` and ``(R, B) @ (B, K)`` over the ``K`` rfft
samples of the band searched; inserting ``D_r`` and ``N_r`` once at orientation ``R_r`` is the
same as inserting every image at every hypothesis with its weight (``insert_posterior``, all of
the mass), whatever the number of images: memory is ``R x K``, flat in the particles. Where
``R x K`` does not fit (fine global grids at large boxes), ``expectation_pass`` keeps sums per
batch over the rows its images touch and inserts them at once: memory flat in ``R`` too, at the
price of inserting a row once per batch that touches it.
"""

import warnings

import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import FourierAccumulator, ParticleBatch

# below this fraction of non-zero weights, the sums go through sparse products (CPU; one
# thread, bench/pose_sums.py: 7-8x faster at 1.5-3 %, 4x at 10 %, 2.7x at 15 %, 1.15x at 25 %,
# 0.6x at 50 %)
_SPARSE_BELOW = 0.15


def band_samples(n: int, max_shell: int, device=None) -> torch.Tensor:
    """Flat indices into an ``(n, n // 2 + 1)`` rfft of the samples with ``round(|k| n) <=
    max_shell`` (``fourier.shell_index``), the origin included."""
    from cryomath.fourier.shells import shell_index

    return (shell_index((n, n), device=device) <= max_shell).reshape(-1).nonzero()[:, 0]


def unshifted_spectra(batch: ParticleBatch, shifts_px: torch.Tensor, keep: torch.Tensor):
    """``(B, S, K)`` the batch's spectra with each shift hypothesis ``shifts_px (S, 2)`` undone,
    ``X exp(+2 pi i k.t_s)``, at the samples ``keep``."""
    n = batch.image_size
    ramp = phase_ramp((n, n), -shifts_px.to(batch.device, batch.dtype), rfft=True)
    return batch.spectra.flatten(1)[:, None, keep] * ramp.flatten(1)[None, :, keep]


class PoseSums:
    """``D (R, K)`` and ``N (R, K)`` of the module docstring for one reference's ``R`` shared
    orientations, for images of ``image_size`` at the samples within ``max_shell``."""

    def __init__(self, n_orientations: int, image_size: int, max_shell: int, dtype, device):
        self.n, self.max_shell = image_size, max_shell
        self.keep = band_samples(image_size, max_shell, device)
        k = len(self.keep)
        item = torch.empty((), dtype=dtype).element_size()
        check_memory(3 * item * n_orientations * k, f"the M-step sums of {n_orientations} "
                     "orientations", device)  # fmt: skip
        self.data = torch.zeros((n_orientations, 2 * k), dtype=dtype, device=device)
        self.weights = torch.zeros((n_orientations, k), dtype=dtype, device=device)
        self.pixel_size_angstrom: float | None = None

    def add(
        self,
        batch: ParticleBatch,
        weights: torch.Tensor,
        shifts_px: torch.Tensor,
        index: torch.Tensor | None = None,
    ) -> None:
        """Add a batch with posterior ``weights (B, S, R)`` over ``shifts_px (S, 2)`` and all
        orientations, or ``weights (B, S, J)`` over each image's own orientations ``index
        (B, J)`` (rows of these sums: an adaptive pass's children), summed over the shifts by
        one batched product and added to their rows (mostly zero weights on the CPU: by sparse
        products, :meth:`_add_sparse`)."""
        expected = self.data.shape[0] if index is None else index.shape[-1]
        if batch.image_size != self.n or weights.shape[-1] != expected:
            raise InvalidInputError("the batch or its weights do not match these sums")
        if self.pixel_size_angstrom not in (None, batch.pixel_size_angstrom):
            raise InvalidInputError("the sums of one iteration need one pixel size")
        self.pixel_size_angstrom = batch.pixel_size_angstrom
        ctf = batch.ctf_values()
        c = 1.0 if ctf is None else ctf.flatten(1)[:, self.keep]  # (B, K)
        x = unshifted_spectra(batch, shifts_px, self.keep) * (c * batch.weights[:, None])[:, None]
        w = weights.to(self.data.dtype)
        x = torch.cat([x.real, x.imag], -1)  # (B, S, 2K)
        ctf2 = c * c if ctf is not None else torch.ones_like(x[:, 0, : len(self.keep)])
        ctf2 = ctf2 * batch.weights[:, None]
        if w.device.type == "cpu" and w.count_nonzero() < _SPARSE_BELOW * w.numel():
            self._add_sparse(w, x.flatten(0, 1), ctf2, index)
        elif index is None:
            self.data += w.flatten(0, 1).T @ x.flatten(0, 1)
            self.weights += w.sum(1).T @ ctf2
        else:
            rows = index.reshape(-1)
            self.data.index_add_(0, rows, torch.bmm(w.transpose(1, 2), x).flatten(0, 1))
            self.weights.index_add_(0, rows, (w.sum(1)[..., None] * ctf2[:, None]).flatten(0, 1))

    def _add_sparse(self, w, x, ctf2, index) -> None:
        """:meth:`add` for mostly zero ``weights (B, S, J)`` (an M-step's significant weights:
        a few % of an adaptive pass's): the sums as products of sparse weight matrices
        ``(R, B S)`` and ``(R, B)`` with ``x (B S, 2K)`` and ``ctf2 (B, K)``, which touch only
        the rows and images with weight, where the dense product writes every ``(b, j)``'s
        row."""
        b, s, j = w.nonzero(as_tuple=True)
        rows = j if index is None else index[b, j]
        self.data.addmm_(_csr(rows, b * w.shape[1] + s, w[b, s, j], self.data.shape[0],
                              len(x)), x)  # fmt: skip
        per_row = w.sum(1)  # (B, J): each image's weight on its rows
        b, j = per_row.nonzero(as_tuple=True)
        rows = j if index is None else index[b, j]
        self.weights.addmm_(_csr(rows, b, per_row[b, j], self.weights.shape[0], len(ctf2)),
                            ctf2)  # fmt: skip

    def insert(
        self, accumulator: FourierAccumulator, rotations: torch.Tensor, rows=slice(None)
    ) -> None:
        """Insert the sums' ``rows`` at their ``rotations (R, [G,] 3, 3)`` (one per row;
        with a symmetry group: every ``A g``) into ``accumulator``."""
        if self.pixel_size_angstrom is None:
            return
        pixel = self.pixel_size_angstrom
        weights = self.weights[rows]
        used = (weights > 0).any(1).nonzero()[:, 0]  # orientations no image chose
        data = self.data[rows][used].unflatten(1, (2, -1))  # (R, 2, K): real, imaginary
        weights, rotations = weights[used], rotations[used]
        if rotations.ndim == 4:  # every copy of a row at its own A g
            copies = rotations.shape[1]
            data, weights = data.repeat_interleave(copies, 0), weights.repeat_interleave(copies, 0)
        scale = (accumulator.voxel_size_angstrom or pixel) / pixel
        accumulator.add_samples(data, weights, rotations.reshape(-1, 3, 3), self.n, self.keep,
                                scale)  # fmt: skip

    def spectra(self, rows=slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """The sums' ``rows`` on the full rfft grid: complex data and real weights, each
        ``(R, n, n // 2 + 1)``, zero beyond the band."""
        n, k = self.n, len(self.keep)
        sums, weights = self.data[rows], self.weights[rows]
        grid = torch.zeros((len(sums), n * (n // 2 + 1)), dtype=sums.dtype, device=sums.device)
        data = torch.complex(grid.index_copy(1, self.keep, sums[:, :k]),
                             grid.index_copy(1, self.keep, sums[:, k:]))  # fmt: skip
        weights = grid.index_copy(1, self.keep, weights)
        return data.unflatten(1, (n, n // 2 + 1)), weights.unflatten(1, (n, n // 2 + 1))


def _csr(rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, n_rows: int,
         n_columns: int) -> torch.Tensor:  # fmt: skip
    """The ``(n_rows, n_columns)`` sparse matrix with ``values`` at ``(rows, columns)`` (a
    repeated pair's values add up), in CSR order."""
    order = torch.argsort(rows * n_columns + columns)
    starts = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    starts[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    with warnings.catch_warnings():  # torch's note that CSR is in beta, on every process
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(starts, columns[order], values[order],
                                       (n_rows, n_columns), check_invariants=False)  # fmt: skip
