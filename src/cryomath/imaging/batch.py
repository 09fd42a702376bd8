"""Particle batches: the one bridge from a :class:`~cryomath.io.ParticleTable` to tensors.

A :class:`ParticleBatch` holds, on one device and in one real dtype, the images of some
particles of one optics group (one pixel size, one box) as rfft spectra
(``fourier.fft_nd(images, 2, rfft=True)``: zero frequency at index 0, forward transform
unscaled, ``(B, n, n // 2 + 1)``), their poses as RELION's A ``(B, 3, 3)``, the content shifts
``shifts_px (B, 2)`` ``(x, y)`` (RELION 3.1: ``-origin / pixel``), their CTFs, the table rows
they come from and per-image weights. :func:`iter_batches` streams a table as such batches:
memory is one batch, whatever the number of particles.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.devices import Staging, check_memory
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shift import phase_ramp


@dataclass
class ParticleBatch:
    """Particles of one optics group on one device (see the module docstring for layouts).

    ``spectra`` is None for a batch made without images (simulation, the normal operator of
    least squares); ``rotations``, ``shifts_px`` and ``ctf`` are None when the table lacks
    them."""

    spectra: torch.Tensor | None
    rotations: torch.Tensor | None
    shifts_px: torch.Tensor | None
    ctf: CTF | None
    pixel_size_angstrom: float
    image_size: int
    optics_group: int
    indices: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_tensors(
        cls,
        images: torch.Tensor | None = None,
        rotations: torch.Tensor | None = None,
        pixel_size_angstrom: float = 1.0,
        shifts_px: torch.Tensor | None = None,
        ctf: CTF | None = None,
        image_size: int | None = None,
        optics_group: int = 0,
        weights: torch.Tensor | None = None,
    ) -> "ParticleBatch":
        """A batch of in-memory ``images (B, n, n)`` (or, without images, of ``rotations
        (B, 3, 3)`` and ``image_size``), in the dtype and on the device of the images (else of
        the rotations)."""
        like = images if images is not None else rotations
        if like is None:
            raise InvalidInputError("a batch needs images or rotations")
        if images is not None:
            if images.ndim != 3 or images.shape[-1] != images.shape[-2]:
                raise InvalidInputError(f"images must be (B, n, n), got {tuple(images.shape)}")
            image_size = images.shape[-1]
        if image_size is None:
            raise InvalidInputError("a batch without images needs image_size")
        if not pixel_size_angstrom > 0:
            raise InvalidInputError(f"pixel size must be positive, got {pixel_size_angstrom}")
        b = like.shape[0]
        dtype, device = like.dtype, like.device
        return cls(
            spectra=None if images is None else fft_nd(images, 2, rfft=True),
            rotations=None if rotations is None else rotations.to(device, dtype),
            shifts_px=None if shifts_px is None else shifts_px.to(device, dtype),
            ctf=ctf,
            pixel_size_angstrom=float(pixel_size_angstrom),
            image_size=int(image_size),
            optics_group=optics_group,
            indices=torch.arange(b, device=device),
            weights=torch.ones(b, dtype=dtype, device=device) if weights is None else weights,
        )

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.weights.dtype

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def ctf_values(self, sign: str = "relion") -> torch.Tensor | None:
        """The CTF of every image on its rfft grid, ``(B, n, n // 2 + 1)``, at the batch's own
        pixel size; None without a CTF."""
        if self.ctf is None:
            return None
        n = self.image_size
        return compute_ctf(self.ctf, (n, n), self.pixel_size_angstrom, sign=sign).to(self.dtype)

    def images(self) -> torch.Tensor:
        """The images in real space, ``(B, n, n)``."""
        if self.spectra is None:
            raise InvalidInputError("this batch was made without images")
        return ifft_nd(self.spectra, (self.image_size, self.image_size), rfft=True)

    def centred(self, spectra: torch.Tensor) -> torch.Tensor:
        """``spectra (B, ..., n, n // 2 + 1)`` of this batch's images (or residuals) with their
        origins undone, as insertion undoes them (unchanged without shifts)."""
        if self.shifts_px is None:
            return spectra
        n = self.image_size
        return spectra * phase_ramp((n, n), -self.shifts_px, rfft=True)

    def subset(self, pick: torch.Tensor) -> "ParticleBatch":
        """The particles selected by a boolean mask or an index tensor (on the batch's device)."""

        def take(value):
            return None if value is None else value[pick]

        return replace(
            self, spectra=take(self.spectra), rotations=take(self.rotations),
            shifts_px=take(self.shifts_px), ctf=None if self.ctf is None else self.ctf.subset(pick),
            indices=self.indices[pick], weights=self.weights[pick],
        )  # fmt: skip


def optics_groups(table, in_table_order: bool = False) -> list[np.ndarray]:
    """The table rows of each group of particles that share an optics group, a pixel size and
    a box (in the order the groups first appear; rows in table order). ``in_table_order``:
    the runs of consecutive rows of one group instead, so that the runs, concatenated, are the
    table's order."""
    table.require("pixel_size_angstrom", purpose="images as tensors")
    columns = [
        table.optics_group if table.optics_group is not None else np.zeros(table.n, np.int64),
        table.pixel_size_angstrom,
        table.image_size if table.image_size is not None else np.zeros(table.n, np.int64),
    ]
    keys = np.stack([np.asarray(c, dtype=np.float64) for c in columns], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if in_table_order:
        starts = np.flatnonzero(np.diff(inverse, prepend=-1))
        return np.split(np.arange(table.n), starts[1:])
    order = np.argsort(first)  # groups in order of first appearance
    return [np.flatnonzero(inverse == g) for g in order]


def iter_batches(
    table,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    *,
    read_images: bool = True,
    use_ctf: bool = True,
    rows: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    in_table_order: bool = False,
) -> Iterator[ParticleBatch]:
    """Stream the particles of ``table`` (all, or the table ``rows`` given) as
    :class:`ParticleBatch` es of at most ``batch_size`` particles, never mixing optics groups
    (nor pixel sizes, nor boxes), made on ``device`` in ``dtype``: one group after another, or
    with ``in_table_order`` in the table's order (a batch ends where the group changes). Images
    are read lazily, one batch at a time (``read_images=False``: metadata only).
    ``weights (table.n,)``: per-image weights (default 1)."""
    if batch_size < 1:
        raise InvalidInputError(f"batch size must be at least 1, got {batch_size}")
    if not dtype.is_floating_point or dtype.is_complex:
        raise InvalidInputError(f"batches are made in a real floating dtype, got {dtype}")
    if use_ctf:
        table.require("ctf", purpose="images with their CTF")
    if read_images:
        table.require("image_paths", "image_indices", purpose="reading images")
    selected = None if rows is None else np.zeros(table.n, bool)
    if selected is not None:
        selected[np.asarray(rows, dtype=np.int64)] = True
    staging = Staging(device)
    if table.image_size is not None:  # images, spectra and predictions: about 64 bytes a pixel
        pixels = int(np.max(table.image_size)) ** 2 * min(batch_size, table.n)
        check_memory(64 * pixels, f"batches of {batch_size} images", staging.device)
    for group_rows in optics_groups(table, in_table_order):
        if selected is not None:
            group_rows = group_rows[selected[group_rows]]
        for start in range(0, len(group_rows), batch_size):
            yield _batch(table, group_rows[start : start + batch_size], staging, dtype,
                         read_images, use_ctf, weights)  # fmt: skip


def _batch(table, rows, staging, dtype, read_images, use_ctf, weights) -> ParticleBatch:
    pixel = float(table.pixel_size_angstrom[rows[0]])
    if pixel <= 0:
        raise InvalidInputError(f"pixel size must be positive, got {pixel:g} A")
    spectra = None
    if read_images:
        images = staging.to_device(table.read_images(rows)).to(dtype)
        spectra = fft_nd(images, 2, rfft=True)
        n = images.shape[-1]
        if table.image_size is not None and int(table.image_size[rows[0]]) != n:
            raise InvalidInputError(
                f"the table gives {int(table.image_size[rows[0]])}-pixel images but "
                f"{table.image_paths[rows[0]]} holds {n}-pixel images"
            )
    elif table.image_size is not None:
        n = int(table.image_size[rows[0]])
    else:
        raise InvalidInputError("the image size is unknown: the table has no image size")
    rotations = None if table.rotations is None else staging.to_device(table.rotations[rows])
    origins = table.origins_angstrom
    shifts = None if origins is None else -staging.to_device(origins[rows]).to(dtype) / pixel
    ctf = None
    if use_ctf:
        ctf = CTF.from_parameters(table.ctf.subset(rows), dtype=dtype, device=staging.device)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, np.float64)[rows]
    group = 0 if table.optics_group is None else int(table.optics_group[rows[0]])
    return ParticleBatch(
        spectra=spectra,
        rotations=None if rotations is None else rotations.to(dtype),
        shifts_px=shifts,
        ctf=ctf,
        pixel_size_angstrom=pixel,
        image_size=n,
        optics_group=group,
        indices=torch.as_tensor(rows, device=staging.device),
        weights=staging.to_device(w).to(dtype),
    )
