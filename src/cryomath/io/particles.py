"""The particle table: one format-neutral record of a particle set.

Every particle file (RELION STAR, cryoSPARC ``.cs``, cryoDRGN pickles) is read into a
:class:`ParticleTable` and written from one, so converting between formats is exact by
construction: each format module knows only its own convention. Conventions
(docs/conventions.md):

* ``rotations`` ``(n, 3, 3)`` float64: the internal pose, RELION's matrix A.
* ``origins_angstrom`` ``(n, 2)`` float64, ``(x, y)``: RELION 3.1's ``rlnOrigin{X,Y}Angst``;
  the image is the centred projection translated by ``-origin``.
* ``ctf``: :class:`CTFParameters`, RELION's units (Angstrom, degrees, kV, mm).
* ``image_indices`` are 0-based positions in the stack ``image_paths`` (resolved against
  ``root`` when relative).
* ``extra`` carries per-particle columns with no meaning in cryomath (under their RELION or
  cryoSPARC names); ``optics_extra`` carries per-optics-group RELION columns, indexed by group.
"""

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cryomath.errors import InvalidInputError, MissingColumnsError
from cryomath.io.mrc import ImageStack


def _finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InvalidInputError(f"{name} contains NaN or inf (first at particle {row})")


@dataclass
class CTFParameters:
    """Per-particle CTF parameters, each an ``(n,)`` float64 array, RELION's units and sign.

    Defocus is positive for underfocus; ``defocus_angle_degrees`` is the angle of the U axis
    from x; ``phase_shift_degrees`` is the phase-plate shift.
    """

    defocus_u_angstrom: np.ndarray
    defocus_v_angstrom: np.ndarray
    defocus_angle_degrees: np.ndarray
    voltage_kv: np.ndarray
    spherical_aberration_mm: np.ndarray
    amplitude_contrast: np.ndarray
    phase_shift_degrees: np.ndarray
    bfactor_angstrom2: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            value = np.asarray(getattr(self, f.name), dtype=np.float64).reshape(-1)
            if n is not None and value.shape[0] != n:
                if value.shape[0] != 1:
                    raise InvalidInputError(
                        f"CTF field {f.name} has {value.shape[0]} values, expected {n}"
                    )
                value = np.repeat(value, n)
            n = value.shape[0] if n is None else n
            _finite(f.name, value)
            setattr(self, f.name, value)

    def __len__(self) -> int:
        return int(self.defocus_u_angstrom.shape[0])

    def subset(self, index) -> "CTFParameters":
        return CTFParameters(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass
class ParticleTable:
    """A particle set in cryomath's conventions (see module docstring). Fields may be None
    when the source file does not hold them; lengths are checked on construction."""

    n: int
    rotations: np.ndarray | None = None
    origins_angstrom: np.ndarray | None = None
    ctf: CTFParameters | None = None
    pixel_size_angstrom: np.ndarray | None = None
    image_size: np.ndarray | None = None
    image_paths: np.ndarray | None = None
    image_indices: np.ndarray | None = None
    optics_group: np.ndarray | None = None
    random_subset: np.ndarray | None = None
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)
    optics_extra: pd.DataFrame = field(default_factory=pd.DataFrame)
    root: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        from cryomath.so3 import check_rotation_matrices  # torch only when poses are present

        if self.n < 1:
            raise InvalidInputError("a particle table needs at least one particle")
        specs = {
            "rotations": (np.float64, (3, 3)),
            "origins_angstrom": (np.float64, (2,)),
            "pixel_size_angstrom": (np.float64, ()),
            "image_size": (np.int64, ()),
            "image_indices": (np.int64, ()),
            "optics_group": (np.int64, ()),
            "random_subset": (np.int64, ()),
        }
        for name, (dtype, tail) in specs.items():
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=dtype)
            if value.shape == tail:
                value = np.broadcast_to(value, (self.n, *tail)).copy()
            if value.shape != (self.n, *tail):
                raise InvalidInputError(
                    f"{name} has shape {value.shape}, expected {(self.n, *tail)}"
                )
            _finite(name, value)
            setattr(self, name, value)
        lowest = {"pixel_size_angstrom": (0.0, "positive"), "image_size": (1, "at least 1"),
                  "image_indices": (-1, "at least 1 (RELION counts from 1)")}  # fmt: skip
        for name, (bound, wanted) in lowest.items():
            value = getattr(self, name)
            if value is not None and (value <= bound).any():
                i = int(np.flatnonzero(value <= bound)[0])
                shown = value[i] + 1 if name == "image_indices" else value[i]
                message = f"{name} of particle {i + 1} is {shown:g}: must be {wanted}"
                raise InvalidInputError(message)
        if self.rotations is not None:
            import torch

            check_rotation_matrices(torch.from_numpy(self.rotations))
        if self.image_paths is not None:
            self.image_paths = np.asarray(self.image_paths, dtype=object).reshape(-1)
            if self.image_paths.shape[0] != self.n:
                raise InvalidInputError(
                    f"{self.image_paths.shape[0]} image paths for {self.n} particles"
                )
        if self.ctf is not None and len(self.ctf) != self.n:
            raise InvalidInputError(f"CTF for {len(self.ctf)} particles, table has {self.n}")
        if len(self.extra.columns) and len(self.extra) != self.n:
            raise InvalidInputError(f"extra columns have {len(self.extra)} rows, expected {self.n}")
        self.extra = self.extra.reset_index(drop=True)
        self.root = Path(self.root)

    def __len__(self) -> int:
        return self.n

    def require(self, *names: str, purpose: str) -> None:
        """Raise :class:`MissingColumnsError` if any of the named fields is None."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise MissingColumnsError(
                f"{purpose} needs {', '.join(missing)}, which the source lacks"
            )

    def without_poses(self) -> "ParticleTable":
        """The same particles without their poses and origins: what inference from the images
        alone (ab initio, a refinement's blind start, a benchmark) may see."""
        return replace(self, rotations=None, origins_angstrom=None)

    def subset(self, index) -> "ParticleTable":
        """The particles selected by a boolean mask or an index array."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        take = {}
        for name in (
            "rotations",
            "origins_angstrom",
            "pixel_size_angstrom",
            "image_size",
            "image_paths",
            "image_indices",
            "optics_group",
            "random_subset",
        ):
            value = getattr(self, name)
            take[name] = None if value is None else value[index]
        return replace(
            self,
            n=int(index.size),
            ctf=None if self.ctf is None else self.ctf.subset(index),
            extra=self.extra.iloc[index].reset_index(drop=True)
            if len(self.extra.columns)
            else pd.DataFrame(),
            **take,
        )

    def resolve_path(self, path: str) -> Path:
        """Where an image path of this table lies on disk (relative paths are under ``root``)."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def read_images(self, particles) -> np.ndarray:
        """Images of the given particle indices, ``(k, y, x)`` float32, read lazily per stack."""
        self.require("image_paths", "image_indices", purpose="reading images")
        particles = np.atleast_1d(np.asarray(particles, dtype=np.int64))
        out = None
        for path in pd.unique(self.image_paths[particles]):
            rows = np.flatnonzero(self.image_paths[particles] == path)
            with ImageStack(self.resolve_path(path)) as stack:
                wanted = self.image_indices[particles[rows]]
                beyond = (wanted >= len(stack)) | (wanted < 0)
                if beyond.any():
                    k = int(np.flatnonzero(beyond)[0])
                    raise InvalidInputError(
                        f"particle {int(particles[rows][k]) + 1} refers to image "
                        f"{int(wanted[k]) + 1} of {path}, which holds {len(stack)} images"
                    )
                images = stack[wanted]
            if out is None:
                out = np.empty((particles.size, *images.shape[1:]), dtype=np.float32)
            elif images.shape[1:] != out.shape[1:]:
                raise InvalidInputError(
                    f"{path}: images of {images.shape[1:]} among {out.shape[1:]}"
                )
            out[rows] = images
        return out
