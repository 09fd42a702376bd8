"""MRC / CCP4 maps and image stacks.

Reading is permissive (many real files break MRC2014: no MAP id, version 0, pixel size 0) and
reports what it had to guess in ``MRCInfo.warnings``. Rules (docs/conventions.md, "MRC"):

* Data are returned as ``(z, y, x)`` (stacks: ``(n, y, x)``) whatever the file's axis order:
  file axes are (sections, rows, columns) holding the cell axes MAPS, MAPR, MAPC.
* Voxel size per axis ``(x, y, z)`` = CELLA / (MX, MY, MZ), in Angstrom; anisotropic voxels are
  reported, never averaged. A zero cell gives voxel size 0 and a warning.
* Origin ``(x, y, z)`` in Angstrom = physical position of voxel index (0, 0, 0): the ORIGIN
  header field when any of it is non-zero, else NSTART (reordered to x, y, z) * voxel size.
  This is ChimeraX's rule; both header fields are kept in ``MRCInfo``.
* ``.gz`` and ``.bz2`` files are read (not memory-mapped); modes 0, 1, 2, 6 and 12 are read
  as stored (int8, int16, float32, uint16, float16); :func:`read_mrc` converts to ``dtype``.

This module is numpy-only (no torch import) so that streaming image data costs no more memory
than the images themselves; use ``torch.from_numpy`` on the arrays it returns.
"""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np

from cryomath.errors import InvalidInputError, MRCFormatError
from cryomath.io.atomic import atomic_output

_COMPRESSED = (".gz", ".bz2")


@dataclass(frozen=True)
class MRCInfo:
    """Header facts of an MRC file, in cryomath's conventions.

    ``shape`` is the ``(z, y, x)`` shape of the returned array (``(n, y, x)`` for stacks);
    vectors are ``(x, y, z)``; lengths in Angstrom.
    """

    path: str
    shape: tuple[int, int, int]
    mode: int
    dtype: str
    voxel_size_angstrom: tuple[float, float, float]
    origin_angstrom: tuple[float, float, float]
    header_origin_angstrom: tuple[float, float, float]
    nstart: tuple[int, int, int]
    axis_order: tuple[int, int, int]
    cell_angstrom: tuple[float, float, float]
    sampling: tuple[int, int, int]
    space_group: int
    is_stack: bool
    extended_header_bytes: int
    warnings: tuple[str, ...] = field(default=())

    @property
    def is_anisotropic(self) -> bool:
        """True when the voxel size differs between axes (by more than 1e-4 relative)."""
        v = np.asarray(self.voxel_size_angstrom)
        return bool(v.max() > 0 and (v.max() - v.min()) > 1e-4 * v.max())

    def cubic_voxel_size_angstrom(self) -> float:
        """The one voxel size of a map with cubic voxels; a clear error when the header leaves
        it unset (0) or the voxels are anisotropic."""
        v = float(self.voxel_size_angstrom[0])
        if not min(self.voxel_size_angstrom) > 0:
            raise InvalidInputError(f"{self.path}: the voxel size is 0 in the header (unset)")
        if self.is_anisotropic:
            raise InvalidInputError(
                f"{self.path}: anisotropic voxels {list(self.voxel_size_angstrom)} are not "
                "supported here"
            )
        return v


def _truncated(path: Path) -> bool:
    """Whether an uncompressed file is shorter than its own header says (a cut download)."""
    if path.suffix in _COMPRESSED:
        return False
    try:
        header = np.fromfile(path, dtype=np.int32, count=56)
    except (OSError, ValueError):
        return False
    if len(header) < 56:
        return False  # not even the start of a header: not an MRC file
    for h in (header, header.byteswap()):
        nx, ny, nz, mode = (int(v) for v in h[:4])
        size = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}.get(mode)
        if size and 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24:
            expected = 1024 + int(h[23]) + nx * ny * nz * size  # header, extended header, data
            return path.stat().st_size < expected
    return False


def _open(path: Path, mmap: bool):
    if not path.exists():
        raise MRCFormatError(f"{path}: no such file")
    if path.is_dir():
        raise MRCFormatError(f"{path}: is a directory, not an MRC file")
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            use_mmap = mmap and path.suffix not in _COMPRESSED
            if use_mmap:
                handle = mrcfile.mmap(str(path), mode="r", permissive=True)
            else:
                handle = mrcfile.open(str(path), mode="r", permissive=True)
        caught = [str(w.message) for w in record]
    except (ValueError, OSError, EOFError) as exc:
        if _truncated(path):
            raise MRCFormatError(f"{path}: the file is truncated") from None
        raise MRCFormatError(f"{path}: not a readable MRC file ({exc})") from None
    if handle.data is None:
        handle.close()
        if _truncated(path):
            raise MRCFormatError(f"{path}: the file is truncated")
        detail = "; ".join(caught) or "no data block"
        raise MRCFormatError(f"{path}: not a readable MRC file ({detail})")
    return handle, caught


def _header_info(path: Path, handle, caught: list[str]) -> tuple[MRCInfo, tuple[int, int, int]]:
    h = handle.header
    notes = [w for w in caught if "machine stamp" not in w]
    axis_order = (int(h.mapc), int(h.mapr), int(h.maps))
    if sorted(axis_order) != [1, 2, 3]:
        notes.append(f"invalid axis order {axis_order}; assuming 1, 2, 3")
        axis_order = (1, 2, 3)
    cell = (float(h.cella.x), float(h.cella.y), float(h.cella.z))
    sampling = (int(h.mx), int(h.my), int(h.mz))
    voxel = tuple(c / m if m > 0 else 0.0 for c, m in zip(cell, sampling, strict=True))
    if not all(np.isfinite(voxel)):
        notes.append("voxel size is NaN or infinite in the header")
    elif min(voxel) <= 0:
        notes.append("voxel size is zero in the header (unknown)")
    angles = (float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma))
    if any(a and abs(a - 90.0) > 1e-3 for a in angles):
        notes.append(
            f"non-orthogonal cell (angles {angles}); coordinates here assume orthogonal axes"
        )
    file_start = (int(h.nxstart), int(h.nystart), int(h.nzstart))  # columns, rows, sections
    nstart = [0, 0, 0]
    for start, cell_axis in zip(file_start, axis_order, strict=True):
        nstart[cell_axis - 1] = start
    header_origin = (float(h.origin.x), float(h.origin.y), float(h.origin.z))
    if any(header_origin):
        origin = header_origin
    else:
        origin = tuple(float(n * v) for n, v in zip(nstart, voxel, strict=True))
    # numpy axes are (sections, rows, columns) = cell axes (maps, mapr, mapc); want (z, y, x)
    file_axes = (axis_order[2], axis_order[1], axis_order[0])
    perm = tuple(file_axes.index(a) for a in (3, 2, 1))
    shape = tuple(int(handle.data.shape[p]) for p in perm) if handle.data.ndim == 3 else None
    if shape is None:
        shape = (1, *handle.data.shape) if handle.data.ndim == 2 else tuple(handle.data.shape)
    is_stack = bool(int(h.ispg) == 0 and int(h.nz) > 1) or path.name.endswith(".mrcs")
    info = MRCInfo(
        path=str(path),
        shape=shape,
        mode=int(h.mode),
        dtype=str(handle.data.dtype),
        voxel_size_angstrom=voxel,
        origin_angstrom=origin,
        header_origin_angstrom=header_origin,
        nstart=tuple(nstart),
        axis_order=axis_order,
        cell_angstrom=cell,
        sampling=sampling,
        space_group=int(h.ispg),
        is_stack=is_stack,
        extended_header_bytes=int(h.nsymbt),
        warnings=tuple(notes),
    )
    return info, perm


def read_mrc_header(path: str | os.PathLike) -> MRCInfo:
    """Read only what :class:`MRCInfo` holds (the data block is memory-mapped, not read)."""
    path = Path(path)
    handle, caught = _open(path, mmap=True)
    try:
        return _header_info(path, handle, caught)[0]
    finally:
        handle.close()


def _check_data(path: Path, info: "MRCInfo") -> None:
    """What no reader of data accepts: complex data, and voxel sizes that are not numbers or
    are negative (0 means unknown, which commands that need a size refuse themselves)."""
    if info.mode in (3, 4):
        raise MRCFormatError(f"{path}: complex data (mode {info.mode}); cryomath reads real maps")
    voxel = np.asarray(info.voxel_size_angstrom, dtype=np.float64)
    if not np.isfinite(voxel).all():
        raise MRCFormatError(f"{path}: the voxel size in the header is NaN or infinite")
    if (voxel < 0).any():
        raise MRCFormatError(f"{path}: the voxel size in the header is negative")


def read_mrc(path: str | os.PathLike, dtype=np.float32) -> tuple[np.ndarray, MRCInfo]:
    """Read a map or stack: ``(z, y, x)`` array of ``dtype`` (None: as stored) and its info."""
    path = Path(path)
    handle, caught = _open(path, mmap=False)
    try:
        info, perm = _header_info(path, handle, caught)
        _check_data(path, info)
        data = handle.data
        if data.ndim == 2:
            data = data[None]
        data = np.ascontiguousarray(data.transpose(perm))
    finally:
        handle.close()
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise MRCFormatError(f"{path}: data contain NaN or inf")
    return data, info


class ImageStack:
    """Lazy access to the images of an MRC stack: ``stack[indices]``.

    Only the requested images are read, with positioned reads of exactly their bytes (not a
    memory map, whose read-ahead would count the page cache against this process), so the memory
    in use is that of the images returned. Indices are 0-based (RELION's ``N@stack.mrcs`` is
    1-based: subtract 1). Compressed files are read whole (they cannot be read piecewise).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        handle, caught = _open(self.path, mmap=True)
        try:
            self.info, perm = _header_info(self.path, handle, caught)
            _check_data(self.path, self.info)
            data = handle.data
            self._dtype = data.dtype
            self._shape = (1, *data.shape) if data.ndim == 2 else tuple(data.shape)
            self._offset = handle.header.nbytes + handle.extended_header.nbytes
            self._whole = (
                np.array(data).reshape(self._shape) if self.path.suffix in _COMPRESSED else None
            )
        finally:
            handle.close()
        if perm != (0, 1, 2):
            raise MRCFormatError(f"{self.path}: image stacks must have axis order 1, 2, 3")
        self._file = open(self.path, "rb") if self._whole is None else None

    def __len__(self) -> int:
        return int(self._shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(y, x)`` size of one image in pixels."""
        return (int(self._shape[1]), int(self._shape[2]))

    def _read(self, i: int) -> np.ndarray:
        if self._whole is not None:
            return self._whole[i]
        count = self._shape[1] * self._shape[2]
        raw = os.pread(
            self._file.fileno(),
            count * self._dtype.itemsize,
            self._offset + i * count * self._dtype.itemsize,
        )
        return np.frombuffer(raw, dtype=self._dtype).reshape(self.image_shape)

    def __getitem__(self, index) -> np.ndarray:
        """Images as float32: an int gives ``(y, x)``, a slice or index array ``(n, y, x)``."""
        n = len(self)
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"image {index} out of range for {n} images in {self.path}")
            return self._read(int(index) % n).astype(np.float32)
        indices = np.arange(n)[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        if indices.size and (indices.max() >= n or indices.min() < -n):
            raise IndexError(f"image indices out of range for {n} images in {self.path}")
        out = np.empty((indices.size, *self.image_shape), dtype=np.float32)
        for k, i in enumerate(indices):
            out[k] = self._read(int(i) % n)
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "ImageStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_WRITE_MODES = {
    np.dtype(np.float32): 2,
    np.dtype(np.float16): 12,
    np.dtype(np.int8): 0,
    np.dtype(np.int16): 1,
    np.dtype(np.uint16): 6,
}


def write_mrc(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size_angstrom: float | tuple[float, float, float],
    origin_angstrom: tuple[float, float, float] = (0.0, 0.0, 0.0),
    *,
    is_stack: bool = False,
    force: bool = False,
) -> None:
    """Write a ``(z, y, x)`` map or ``(n, y, x)`` stack as a valid MRC2014 file, atomically.

    float64 data are stored as float32 (mode 2); float16, int8, int16 and uint16 keep their
    mode. The header gets the MAP id, machine stamp, min/max/mean/rms, the voxel size as cell /
    sampling, the origin in the ORIGIN field, and space group 0 for stacks, 1 for maps.
    """
    array = np.asarray(data)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InvalidInputError(f"MRC data must be 2-D or 3-D, got shape {array.shape}")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype not in _WRITE_MODES:
        raise InvalidInputError(f"cannot store dtype {array.dtype} in MRC (use float32)")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError("refusing to write NaN or inf to an MRC file")
    voxel = (voxel_size_angstrom,) * 3 if np.isscalar(voxel_size_angstrom) else voxel_size_angstrom
    with atomic_output(path, force=force) as tmp:
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            if is_stack:
                mrc.set_image_stack()
            else:
                mrc.set_volume()
            mrc.voxel_size = tuple(float(v) for v in voxel)
            if is_stack:  # one image is one pixel deep: keep MZ = 1 and CELLA.z = voxel_z
                mrc.header.mz = 1
                mrc.header.cella.z = float(voxel[2])
            mrc.header.origin = tuple(float(o) for o in origin_angstrom)
            _label(mrc)
            mrc.update_header_stats()


def _label(mrc) -> None:
    """One fixed label instead of mrcfile's timestamped one: the same data give the same
    bytes (reproducible outputs)."""
    mrc.header.label[:] = b""
    mrc.header.label[0] = b"cryomath"
    mrc.header.nlabl = 1


class MRCStackWriter:
    """Write an ``(n, h, w)`` float32 MRC stack image block by image block, atomically: the file
    appears at ``path`` (complete, header statistics set) only when the ``with`` block ends
    without error. Memory is one block, whatever ``n``.

    >>> with MRCStackWriter("stack.mrcs", 1000, (128, 128), 1.05) as out:  # doctest: +SKIP
    ...     out.write(block)  # (k, 128, 128), in order
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_images: int,
        image_shape: tuple[int, int],
        pixel_size_angstrom: float,
        *,
        force: bool = False,
    ):
        if n_images < 1:
            raise InvalidInputError("a stack needs at least one image")
        self.path, self.n, self.shape = Path(path), int(n_images), tuple(image_shape)
        self.pixel_size, self.force = float(pixel_size_angstrom), force
        self._written = 0
        self._stats = [np.inf, -np.inf, 0.0, 0.0]  # min, max, sum, sum of squares

    def __enter__(self) -> "MRCStackWriter":
        self._context = atomic_output(self.path, self.force)
        self._tmp = self._context.__enter__()
        with mrcfile.new_mmap(
            str(self._tmp), (self.n, *self.shape), mrc_mode=2, overwrite=True
        ) as m:
            m.set_image_stack()
            m.voxel_size = (self.pixel_size,) * 3
            m.header.mz = 1
            m.header.cella.z = self.pixel_size
            _label(m)
            self._offset = m.header.nbytes + m.extended_header.nbytes
            fields = m.header.dtype.fields
            self._stat_fields = {k: fields[k] for k in ("dmin", "dmax", "dmean", "rms")}
        self._fd = os.open(self._tmp, os.O_WRONLY)
        return self

    def write(self, images: np.ndarray) -> None:
        """Append ``(k, h, w)`` images (cast to float32)."""
        block = np.ascontiguousarray(images, dtype=np.float32)
        if block.ndim != 3 or block.shape[1:] != self.shape:
            raise InvalidInputError(f"images must be (k, {self.shape[0]}, {self.shape[1]})")
        if self._written + len(block) > self.n:
            raise InvalidInputError(f"more than the {self.n} images declared")
        if not np.isfinite(block).all():
            raise InvalidInputError("refusing to write NaN or inf to an MRC file")
        position = self._offset + self._written * block[0].nbytes
        os.pwrite(self._fd, block.tobytes(), position)
        self._written += len(block)
        values = block.astype(np.float64)
        self._stats[0] = min(self._stats[0], float(values.min()))
        self._stats[1] = max(self._stats[1], float(values.max()))
        self._stats[2] += float(values.sum())
        self._stats[3] += float((values * values).sum())

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is None and self._written != self.n:
            kind = InvalidInputError
            value = InvalidInputError(f"wrote {self._written} of {self.n} images")
        if kind is None:
            count = self.n * self.shape[0] * self.shape[1]
            mean = self._stats[2] / count
            rms = max(self._stats[3] / count - mean * mean, 0.0) ** 0.5
            values = {"dmin": self._stats[0], "dmax": self._stats[1], "dmean": mean, "rms": rms}
            for name, (dtype, offset) in self._stat_fields.items():
                os.pwrite(self._fd, np.array(values[name], dtype=dtype).tobytes(), offset)
        os.close(self._fd)
        self._context.__exit__(kind, value, traceback)
        if isinstance(value, InvalidInputError) and traceback is None:
            raise value
        return False
