"""Insertion (back-projection) of central slices into a padded rfft volume: the exact adjoint
of ``projection.extract_central_slices_rfft_3d`` (same trilinear kernel, same Friedel flip,
same Nyquist mask), computed by the adjoint kernel of ``grid_sample``
(``aten::grid_sampler_3d_backward``), one chunk of slices at a time: memory is the volume plus
one chunk, whatever the number of slices, and no per-sample corner indices are materialised.

``FourierAccumulator`` keeps ``data`` (complex, the sum of inserted ``CTF * image`` spectra) and
``weights`` (real, the sum of inserted ``CTF^2``), both ``(n_pad, n_pad, n_pad // 2 + 1)`` with
z, y fft-shifted (``prepare_volume``'s layout). Image spectra are weighted by the rfft Hermitian
multiplicity so that every frequency of an image counts once with its Friedel mate.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import grid_sample_coordinates
from cryomath.fourier.shells import hermitian_multiplicity
from cryomath.projection.fourier_slice import _slice_coordinates

_BILINEAR, _ZEROS = 0, 0


def _adjoint_sample(
    grad_output: torch.Tensor, volume_shape: tuple[int, ...], grid: torch.Tensor
) -> torch.Tensor:
    """Adjoint of trilinear ``grid_sample`` (align_corners, zero padding) at ``grid``:
    ``grad_output (1, C, P, h, w)`` -> ``(1, C, D, H, W)``."""
    like = grad_output.new_empty((1, grad_output.shape[1], *volume_shape))
    out, _ = torch.ops.aten.grid_sampler_3d_backward(
        grad_output, like, grid, _BILINEAR, _ZEROS, True, [True, False]
    )
    return out


def insert_central_slices_rfft_3d(
    slices: torch.Tensor,
    rotations: torch.Tensor,
    n_pad: int,
    slice_weights: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Adjoint of slice extraction for ``slices (P, n, n // 2 + 1)`` complex at ``rotations
    (P, 3, 3)``: returns the complex ``(n_pad, n_pad, n_pad // 2 + 1)`` sum, and the same
    insertion of the real ``slice_weights`` if given."""
    p, n = slices.shape[0], slices.shape[-2]
    if slices.shape != (p, n, n // 2 + 1) or rotations.shape != (p, 3, 3):
        raise InvalidInputError(
            f"need slices (P, n, n//2+1) and rotations (P, 3, 3); got {tuple(slices.shape)} "
            f"and {tuple(rotations.shape)}"
        )
    real = slices.real.dtype
    shape = (n_pad, n_pad, n_pad // 2 + 1)
    data = torch.zeros((1, 2, *shape), dtype=real, device=slices.device)
    weights = (
        None
        if slice_weights is None
        else torch.zeros((1, 1, *shape), dtype=real, device=slices.device)
    )
    for start in range(0, p, chunk_size):
        chunk = slice(start, start + chunk_size)
        index, sign, inside = _slice_coordinates(rotations[None, chunk].to(real), n, n_pad, 0.0, 0)
        grid = grid_sample_coordinates(index, shape)
        s = slices[chunk] * inside
        grad = torch.stack([s.real, s.imag * sign[0]], 0)[None]  # (1, 2, P, h, w)
        data += _adjoint_sample(grad.contiguous(), shape, grid)
        if weights is not None:
            w = (slice_weights[chunk] * inside)[None, None]
            weights += _adjoint_sample(w.to(real).contiguous(), shape, grid)
    volume = torch.complex(data[0, 0], data[0, 1])
    return volume, (None if weights is None else weights[0, 0])


class FourierAccumulator:
    """Running sums for direct Fourier inversion of ``n``-pixel images into a volume padded by
    ``pad_factor``."""

    def __init__(self, n: int, pad_factor: float = 2.0, dtype=torch.float64, device=None):
        self.n, self.n_pad = n, round(n * pad_factor)
        shape = (self.n_pad, self.n_pad, self.n_pad // 2 + 1)
        self.data = torch.zeros(
            shape,
            dtype=torch.complex128 if dtype == torch.float64 else torch.complex64,
            device=device,
        )
        self.weights = torch.zeros(shape, dtype=dtype, device=device)
        self.count = 0

    def insert(
        self,
        image_spectra: torch.Tensor,
        rotations: torch.Tensor,
        ctf_values: torch.Tensor | None = None,
    ) -> None:
        """Insert ``(P, n, n // 2 + 1)`` rfft spectra (centred: origins already undone) of images
        with poses ``(P, 3, 3)`` and rfft ``ctf_values (P, n, n // 2 + 1)``."""
        n = self.n
        multiplicity = hermitian_multiplicity(
            (n, n), dtype=self.weights.dtype, device=self.weights.device
        )
        ctf = (
            torch.ones_like(image_spectra.real)
            if ctf_values is None
            else ctf_values.to(self.weights.dtype)
        )
        data, weights = insert_central_slices_rfft_3d(
            image_spectra.to(self.data.dtype) * (ctf * multiplicity), rotations,
            self.n_pad, ctf * ctf * multiplicity,
        )  # fmt: skip
        self.data += data
        self.weights += weights
        self.count += image_spectra.shape[0]

    def merge(self, other: "FourierAccumulator") -> None:
        """Add another accumulator's sums (for halves, or partial sums from workers, which may
        come from another device)."""
        self.data += other.data.to(self.data.device)
        self.weights += other.weights.to(self.weights.device)
        self.count += other.count

    def to(self, device: str | torch.device) -> "FourierAccumulator":
        """Move the sums to ``device`` (in place; returns ``self``)."""
        self.data, self.weights = self.data.to(device), self.weights.to(device)
        return self
