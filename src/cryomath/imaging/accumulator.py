"""Running Fourier sums of the adjoint of image formation (what reconstruction and every
M-step divide).

``FourierAccumulator`` keeps ``data`` (complex, the sum of inserted ``w CTF X`` spectra) and
``weights`` (real, the sum of inserted ``w CTF^2``), both ``(n_pad, n_pad, n_pad // 2 + 1)``
with z, y fft-shifted (``projection.prepare_volume``'s layout), for a volume of ``n`` voxels of
``voxel_size_angstrom``. Image spectra count with their rfft Hermitian multiplicity, so that
every frequency of an image counts once with its Friedel mate.
"""

import copy

import torch

from cryomath.devices import check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shells import hermitian_multiplicity
from cryomath.projection.fourier_slice import inside_nyquist
from cryomath.projection.insertion import (
    accumulate_central_slices_rfft_3d,
    accumulate_samples_rfft_3d,
)


class FourierAccumulator:
    """Running sums for direct Fourier inversion into an ``n``-voxel volume padded by
    ``pad_factor``; ``with_weights=False`` keeps only ``data`` (an adjoint, as least squares
    needs). The sums live in one real array ``sums (1, C, n_pad, n_pad, n_pad // 2 + 1)``
    (channels: real and imaginary parts of ``data``, then ``weights``), which insertion adds
    to in place. ``compiled``: insert through the compiled kernels on the CPU
    (``projection.accumulate_central_slices_rfft_3d``); the sums are then channel-last in
    memory, so that their scatter adds to them in place."""

    def __init__(
        self,
        n: int,
        pad_factor: float = 2.0,
        dtype=torch.float64,
        device=None,
        voxel_size_angstrom: float | None = None,
        with_weights: bool = True,
        compiled: bool = False,
    ):
        self.n, self.n_pad = n, round(n * pad_factor)
        self.voxel_size_angstrom = voxel_size_angstrom
        self.with_weights = with_weights
        if n < 1 or not 1 <= pad_factor <= 8:
            raise InvalidInputError(f"need n >= 1 and pad_factor in [1, 8], got {n}, {pad_factor}")
        shape = (self.n_pad, self.n_pad, self.n_pad // 2 + 1)
        channels = 3 if with_weights else 2
        # the sums, and as much again for the inversion that divides them
        needed = 2 * self.sums_bytes(n, pad_factor, dtype, with_weights)
        check_memory(needed, f"a Fourier accumulator of {self.n_pad}^3", device)
        self.compiled = compiled
        if compiled:
            last = torch.zeros((1, *shape, channels), dtype=dtype, device=device)
            self.sums = last.permute(0, 4, 1, 2, 3)
        else:
            self.sums = torch.zeros((1, channels, *shape), dtype=dtype, device=device)
        self.count = 0

    @staticmethod
    def sums_bytes(n: int, pad_factor: float = 2.0, dtype=torch.float64,
                   with_weights: bool = True) -> int:  # fmt: skip
        """The bytes of an accumulator's sums (without the inversion's copy)."""
        n_pad = round(n * pad_factor)
        channels = 3 if with_weights else 2
        item = torch.empty((), dtype=dtype).element_size()
        return channels * n_pad * n_pad * (n_pad // 2 + 1) * item

    @property
    def data(self) -> torch.Tensor:
        """The complex sum of inserted ``w CTF X`` (a new tensor)."""
        return torch.complex(self.sums[0, 0], self.sums[0, 1])

    @property
    def weights(self) -> torch.Tensor:
        """The real sum of inserted ``w CTF^2`` (a view of the sums)."""
        if not self.with_weights:
            raise InvalidInputError("this accumulator keeps no weights")
        return self.sums[0, 2]

    def add(
        self,
        weighted_spectra: torch.Tensor,
        weights: torch.Tensor,
        rotations: torch.Tensor,
        frequency_scale: float = 1.0,
        max_shell: int | None = None,
        ewald_curvature: float = 0.0,
    ) -> None:
        """Insert ``(P, m, m // 2 + 1)`` rfft ``weighted_spectra`` (``w CTF X``, origins undone)
        and their real ``weights`` (``w CTF^2``) at poses ``(P, 3, 3)``; ``frequency_scale`` =
        this volume's voxel size / the images' pixel size; ``max_shell``: both are zero beyond
        that shell (only the shells up to it are spread); ``ewald_curvature``: onto curved
        slices (``ctf.ewald``)."""
        m = weighted_spectra.shape[-2]
        real = self.sums.dtype
        multiplicity = hermitian_multiplicity((m, m), dtype=real, device=self.sums.device)
        accumulate_central_slices_rfft_3d(
            self.sums, weighted_spectra.to(complex_dtype(real)) * multiplicity, rotations.to(real),
            weights.to(real) * multiplicity if self.with_weights else None,
            frequency_scale=frequency_scale, max_shell=max_shell, ewald_curvature=ewald_curvature,
            compiled=self.compiled,
        )  # fmt: skip
        self.count += weighted_spectra.shape[0]

    def add_samples(
        self,
        data: torch.Tensor,
        weights: torch.Tensor,
        rotations: torch.Tensor,
        image_size: int,
        samples: torch.Tensor,
        frequency_scale: float = 1.0,
    ) -> None:
        """:meth:`add` for spectra known only at some samples (a band; zero elsewhere): ``data
        (P, 2, K)`` the real and imaginary parts of ``w CTF X`` and ``weights (P, K)`` the
        ``w CTF^2`` at the flat indices ``samples (K,)`` of ``image_size``'s ``(m, m // 2 +
        1)`` rfft, without the full grids :meth:`add` takes."""
        m, real = image_size, self.sums.dtype
        if data.shape[1:] != (2, len(samples)) or weights.shape[1:] != (len(samples),):
            raise InvalidInputError(f"need data (P, 2, {len(samples)}) and weights (P, "
                                    f"{len(samples)}); got {tuple(data.shape)} and "
                                    f"{tuple(weights.shape)}")  # fmt: skip
        device = self.sums.device
        grid = fftfreq_grid((m, m), rfft=True, dtype=torch.float64, device=device)
        k = grid.reshape(-1, 2)[samples]
        multiplicity = hermitian_multiplicity((m, m), dtype=real, device=device).reshape(-1)
        values = torch.cat([data.to(real), weights.to(real)[:, None]], 1)[:, : self.sums.shape[1]]
        values.mul_(multiplicity[samples])  # the one copy of the band this call makes
        inside = inside_nyquist(k, frequency_scale)
        if not bool(inside.all()):
            k, values = k[inside], values[..., inside]
        accumulate_samples_rfft_3d(self.sums, values, rotations.to(real), k.to(real),
                                   frequency_scale=frequency_scale,
                                   compiled=self.compiled)  # fmt: skip
        self.count += data.shape[0]

    def frequencies(self) -> torch.Tensor:
        """The frequency ``(k_z, k_y, k_x)`` of every sample of the padded sums, in cycles per
        voxel (``(n_pad, n_pad, n_pad // 2 + 1, 3)``, float64, on the sums' device; the first
        two axes centred, the last rfft's); times ``n``, in samples of the ``n``-voxel box's
        spectrum."""
        device = self.sums.device
        centred = torch.fft.fftshift(torch.fft.fftfreq(self.n_pad, dtype=torch.float64,
                                                       device=device))  # fmt: skip
        last = torch.fft.rfftfreq(self.n_pad, dtype=torch.float64, device=device)
        return torch.stack(torch.meshgrid(centred, centred, last, indexing="ij"), -1)

    def shells(self) -> torch.Tensor:
        """The shell of every sample of the padded sums, in units of the ``n``-voxel box
        (``(n_pad, n_pad, n_pad // 2 + 1)``, long, on the sums' device)."""
        return torch.round(torch.linalg.vector_norm(self.frequencies(), dim=-1) * self.n).long()

    def merge(self, other: "FourierAccumulator") -> None:
        """Add another accumulator's sums (for halves, or partial sums from workers, which may
        come from another device)."""
        self.sums += other.sums.to(self.sums.device)
        self.count += other.count

    def subtract(self, other: "FourierAccumulator") -> None:
        """Take another accumulator's sums out (a map without those images: a leave-out
        reconstruction)."""
        self.sums -= other.sums.to(self.sums.device)
        self.count -= other.count

    def copy(self) -> "FourierAccumulator":
        """An independent copy."""
        twin = copy.copy(self)
        twin.sums = self.sums.clone()
        return twin

    def to(self, device: str | torch.device) -> "FourierAccumulator":
        """Move the sums to ``device`` (in place; returns ``self``)."""
        self.sums = self.sums.to(device)
        return self
