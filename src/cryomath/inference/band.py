"""Reference projections at the samples a Gaussian score counts (the band), as the two right
factors of the score's matrix products (``inference.scores``).

* :func:`scored_samples`: the rfft samples of shells 1 to ``max_shell``, their Hermitian
  multiplicity and shell.
* :class:`BandProjections`: a table of projections there, ``[Re P, Im P]`` and ``|P|^2``.
* :class:`OwnRows`: each image's own rows of a shared table (an oversampled global search's
  children of its significant orientations), gathered by the score a few images at a time.
"""

from dataclasses import dataclass

import torch

from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shells import hermitian_multiplicity, shell_index


def scored_samples(n: int, max_shell: int, device=None, dtype=torch.float32):
    """``(keep, m, shells)``, each ``(K,)``: the flat indices into an ``(n, n // 2 + 1)`` rfft
    of the samples in shells 1 to ``max_shell`` (the ones a score counts), their Hermitian
    multiplicity and their shell."""
    shells = shell_index((n, n), device=device).reshape(-1)
    m = hermitian_multiplicity((n, n), device=device, dtype=dtype).reshape(-1)
    keep = ((shells <= max_shell) & (shells >= 1) & (m > 0)).nonzero()[:, 0]
    return keep, m[keep], shells[keep]


def scored_frequencies(n: int, max_shell: int, device=None, dtype=torch.float32):
    """``(K, 2)``: the frequencies ``(kx, ky)`` (cycles per pixel) of :func:`scored_samples`,
    where ``projection.extract_samples_rfft_3d`` makes a table's band."""
    keep = scored_samples(n, max_shell, device)[0]
    return fftfreq_grid((n, n), rfft=True, dtype=dtype, device=device).reshape(-1, 2)[keep]


@dataclass
class BandProjections:
    """Projections ``([B,] R, n, n // 2 + 1)`` at the samples a score counts
    (:func:`scored_samples` of ``image_size`` and ``max_shell``): ``parts ([B,] R, 2K)`` real,
    ``[Re P, Im P]`` (the cross term's right factor), and ``power ([B,] R, K)``, ``|P|^2``.
    Indexing takes rows: ``table[rows]`` with ``rows (B, J)`` is each image's own ``J``."""

    parts: torch.Tensor
    power: torch.Tensor
    image_size: int
    max_shell: int

    @classmethod
    def of(cls, projections: torch.Tensor, max_shell: int) -> "BandProjections":
        """The band of complex ``projections (..., R, n, n // 2 + 1)``."""
        n = projections.shape[-2]
        keep = scored_samples(n, max_shell, projections.device)[0]
        return cls.of_samples(projections.flatten(-2)[..., keep], n, max_shell)

    @classmethod
    def of_samples(cls, p: torch.Tensor, image_size: int, max_shell: int) -> "BandProjections":
        """The band from its complex samples ``p (..., R, K)`` (at :func:`scored_frequencies`
        of ``image_size`` and ``max_shell``)."""
        return cls(torch.cat([p.real, p.imag], -1), p.real**2 + p.imag**2, image_size, max_shell)

    @property
    def count(self) -> int:
        """``R``: the projections of the table, or of each image."""
        return self.power.shape[-2]

    def __getitem__(self, rows) -> "BandProjections":
        return BandProjections(self.parts[rows], self.power[rows], self.image_size,
                               self.max_shell)  # fmt: skip

    def spectra(self) -> torch.Tensor:
        """The complex ``(..., n, n // 2 + 1)`` projections, zero outside the band."""
        n, k = self.image_size, self.power.shape[-1]
        keep = scored_samples(n, self.max_shell, self.parts.device)[0]
        values = torch.complex(self.parts[..., :k], self.parts[..., k:])
        out = values.new_zeros((*values.shape[:-1], n * (n // 2 + 1)))
        out[..., keep] = values
        return out.unflatten(-1, (n, n // 2 + 1))


@dataclass
class OwnRows:
    """Each image's own rows ``rows (B, J)`` of the shared ``table`` (R rows). Scores gather
    them a few images at a time into one small buffer: gathered whole, 256 images x 512 rows
    of a 20-shell band of a 42 px box are 0.66 GB, written once and read once by a product
    that takes as long as the copy (3 times less when freshly mapped memory must be zeroed).
    ``own[b, j]`` (index tensors) is the table's rows ``rows[b, j]``. For the E-step: scores
    of own rows carry no gradient (their products write into preallocated outputs)."""

    table: BandProjections
    rows: torch.Tensor

    @property
    def count(self) -> int:
        """``J``: the rows of each image."""
        return self.rows.shape[1]

    def __getitem__(self, index) -> BandProjections:
        return self.table[self.rows[index]]
