"""Running Fourier sums of the adjoint of image formation (what reconstruction and every
M-step divide).

``FourierAccumulator`` keeps ``data`` (complex, the sum of inserted ``w CTF X`` spectra) and
``weights`` (real, the sum of inserted ``w CTF^2``), both ``(n_pad, n_pad, n_pad // 2 + 1)``
with z, y fft-shifted (``projection.prepare_volume``'s layout), for a volume of ``n`` voxels of
``voxel_size_angstrom``. Image spectra count with their rfft Hermitian multiplicity, so that
every frequency of an image counts once with its Friedel mate.
"""

import torch

from cryomath.fourier.shells import hermitian_multiplicity
from cryomath.projection.insertion import insert_central_slices_rfft_3d


class FourierAccumulator:
    """Running sums for direct Fourier inversion into an ``n``-voxel volume padded by
    ``pad_factor``; ``with_weights=False`` keeps only ``data`` (an adjoint, as least squares
    needs)."""

    def __init__(
        self,
        n: int,
        pad_factor: float = 2.0,
        dtype=torch.float64,
        device=None,
        voxel_size_angstrom: float | None = None,
        with_weights: bool = True,
    ):
        self.n, self.n_pad = n, round(n * pad_factor)
        self.voxel_size_angstrom = voxel_size_angstrom
        shape = (self.n_pad, self.n_pad, self.n_pad // 2 + 1)
        self.data = torch.zeros(
            shape,
            dtype=torch.complex128 if dtype == torch.float64 else torch.complex64,
            device=device,
        )
        self.weights = torch.zeros(shape if with_weights else (), dtype=dtype, device=device)
        self.with_weights = with_weights
        self.count = 0

    def add(
        self,
        weighted_spectra: torch.Tensor,
        weights: torch.Tensor,
        rotations: torch.Tensor,
        frequency_scale: float = 1.0,
    ) -> None:
        """Insert ``(P, m, m // 2 + 1)`` rfft ``weighted_spectra`` (``w CTF X``, origins undone)
        and their real ``weights`` (``w CTF^2``) at poses ``(P, 3, 3)``; ``frequency_scale`` =
        this volume's voxel size / the images' pixel size."""
        m = weighted_spectra.shape[-2]
        multiplicity = hermitian_multiplicity(
            (m, m), dtype=self.weights.dtype, device=self.weights.device
        )
        weights = weights.to(self.weights.dtype) * multiplicity if self.with_weights else None
        data, weights = insert_central_slices_rfft_3d(
            weighted_spectra.to(self.data.dtype) * multiplicity, rotations.to(self.weights.dtype),
            self.n_pad, weights, frequency_scale=frequency_scale,
        )  # fmt: skip
        self.data += data
        if self.with_weights:
            self.weights += weights
        self.count += weighted_spectra.shape[0]

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
