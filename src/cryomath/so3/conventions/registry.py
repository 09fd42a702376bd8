"""The registry of named rotation conventions: each converts ``(..., n)`` parameters to and from
the internal pose matrix A (RELION's). ``scipy:SEQ`` names any scipy Euler sequence."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.checks import check_rotation_matrices
from cryomath.so3.conventions import aspire, cryodrgn, cryojax, cryosparc, eman2, relion, scipy
from cryomath.so3.euler import check_sequence


@dataclass(frozen=True)
class Convention:
    """A named rotation convention: parameter names (in order), their units, and converters."""

    name: str
    parameters: tuple[str, ...]
    units: str
    description: str
    to_matrix: Callable[[torch.Tensor], torch.Tensor]
    from_matrix: Callable[[torch.Tensor], torch.Tensor]


def _flat(to_matrix, from_matrix):
    """Wrap converters of ``(..., 3, 3)`` matrices to take and give 9 numbers (row-major)."""
    return (
        lambda p: to_matrix(p.reshape(*p.shape[:-1], 3, 3)),
        lambda m: from_matrix(m).flatten(-2),
    )


_EMAN_SPIN = ("omega", "n1", "n2", "n3")
_C = Convention
_ENTRIES = [
    _C(
        "relion",
        ("rot", "tilt", "psi"),
        "degrees",
        "RELION/SPIDER/XMIPP/FREALIGN/cisTEM ZYZ",
        relion.matrix_from_relion_euler,
        relion.relion_euler_from_matrix,
    ),
    _C(
        "cryosparc",
        ("pose_x", "pose_y", "pose_z"),
        "radians",
        "cryoSPARC rotation vector of A^T",
        cryosparc.matrix_from_cryosparc_pose,
        cryosparc.cryosparc_pose_from_matrix,
    ),
    _C(
        "cryodrgn",
        tuple(f"r{i}{j}" for i in range(3) for j in range(3)),
        "",
        "cryoDRGN R = A",
        *_flat(
            lambda r: check_rotation_matrices(cryodrgn.matrix_from_cryodrgn_rotation(r)),
            cryodrgn.cryodrgn_rotation_from_matrix,
        ),
    ),
    _C(
        "matrix",
        tuple(f"a{i}{j}" for i in range(3) for j in range(3)),
        "",
        "A, row-major",
        *_flat(check_rotation_matrices, lambda m: m),
    ),
    _C(
        "eman",
        ("az", "alt", "phi"),
        "degrees",
        "EMAN2 eman (ZXZ)",
        eman2.matrix_from_eman,
        eman2.eman_from_matrix,
    ),
    _C(
        "imagic",
        ("alpha", "beta", "gamma"),
        "degrees",
        "EMAN2 imagic (= eman)",
        eman2.matrix_from_eman,
        eman2.eman_from_matrix,
    ),
    _C(
        "spider",
        ("phi", "theta", "psi"),
        "degrees",
        "EMAN2 spider (RELION's, in [0, 360))",
        eman2.matrix_from_spider,
        eman2.spider_from_matrix,
    ),
    _C(
        "mrc",
        ("phi", "theta", "omega"),
        "degrees",
        "EMAN2 mrc (= spider)",
        eman2.matrix_from_spider,
        eman2.spider_from_matrix,
    ),
    _C(
        "xyz",
        ("xtilt", "ytilt", "ztilt"),
        "degrees",
        "EMAN2 xyz",
        eman2.matrix_from_xyz,
        eman2.xyz_from_matrix,
    ),
    _C(
        "quaternion",
        ("e0", "e1", "e2", "e3"),
        "",
        "EMAN2 quaternion of A^T",
        eman2.matrix_from_eman_quaternion,
        eman2.eman_quaternion_from_matrix,
    ),
    _C(
        "spin",
        _EMAN_SPIN,
        "degrees",
        "EMAN2 spin: A^T as angle and axis",
        eman2.matrix_from_spin,
        eman2.spin_from_matrix,
    ),
    _C(
        "sgirot",
        ("q", "n1", "n2", "n3"),
        "degrees",
        "EMAN2 sgirot (= spin)",
        eman2.matrix_from_spin,
        eman2.spin_from_matrix,
    ),
    _C(
        "spinvec",
        ("v1", "v2", "v3"),
        "turns",
        "EMAN2 spinvec: spin axis * omega / 360",
        eman2.matrix_from_spinvec,
        eman2.spinvec_from_matrix,
    ),
    _C(
        "aspire",
        ("rot", "tilt", "psi"),
        "radians",
        "ASPIRE from_euler ZYZ (= A^T)",
        aspire.matrix_from_aspire_euler,
        aspire.aspire_euler_from_matrix,
    ),
    _C(
        "cryojax",
        ("phi", "theta", "psi"),
        "degrees",
        "cryoJAX EulerAnglePose (extrinsic zyz)",
        cryojax.matrix_from_cryojax_euler,
        cryojax.cryojax_euler_from_matrix,
    ),
]
CONVENTIONS: dict[str, Convention] = {c.name: c for c in _ENTRIES}
ALIASES = {"xmipp": "relion", "frealign": "relion", "cistem": "relion"}


def get_convention(name: str) -> Convention:
    """The convention called ``name`` (case-insensitive; ``scipy`` = ``scipy:ZYZ``)."""
    key = name.strip()
    lower = key.lower()
    if lower == "scipy" or lower.startswith("scipy:"):
        seq = key.split(":", 1)[1] if ":" in key else "ZYZ"
        check_sequence(seq)
        return Convention(
            f"scipy:{seq}",
            tuple(f"angle{i}" for i in (1, 2, 3)),
            "degrees",
            f"scipy Rotation.from_euler('{seq}') of A^T",
            partial(scipy.matrix_from_scipy_euler, seq=seq),
            partial(scipy.scipy_euler_from_matrix, seq=seq),
        )
    lower = ALIASES.get(lower, lower)
    if lower not in CONVENTIONS:
        known = ", ".join([*CONVENTIONS, *ALIASES, "scipy[:SEQ]"])
        raise InvalidInputError(f"unknown rotation convention {name!r}; known: {known}")
    return CONVENTIONS[lower]


def _check_parameters(params: torch.Tensor, convention: Convention) -> None:
    n = len(convention.parameters)
    if params.ndim < 1 or params.shape[-1] != n:
        raise InvalidInputError(
            f"convention {convention.name!r} takes {n} numbers per rotation "
            f"({', '.join(convention.parameters)}), got shape {tuple(params.shape)}"
        )
    if not bool(torch.isfinite(params).all()):
        raise InvalidInputError(f"{convention.name} parameters contain NaN or inf")


def matrix_from_convention(params: torch.Tensor, name: str) -> torch.Tensor:
    """``(..., n)`` parameters of convention ``name`` -> ``(..., 3, 3)`` pose matrices A."""
    convention = get_convention(name)
    _check_parameters(params, convention)
    if convention.name == "quaternion":
        norm = params.norm(dim=-1)
        if not bool((norm > 1e-8).all()):
            i = int((norm <= 1e-8).reshape(-1).nonzero()[0])
            raise InvalidInputError(f"quaternion {i + 1} is zero: it is no rotation")
    matrices = convention.to_matrix(params)
    if not bool(torch.isfinite(matrices).all()):  # e.g. a spin axis of length zero
        i = int((~torch.isfinite(matrices).flatten(-2).all(-1)).reshape(-1).nonzero()[0])
        raise InvalidInputError(f"{name} parameters {i + 1} define no rotation")
    return check_rotation_matrices(matrices)


def convention_from_matrix(matrix: torch.Tensor, name: str) -> torch.Tensor:
    """``(..., 3, 3)`` pose matrices A -> ``(..., n)`` parameters of convention ``name``."""
    return get_convention(name).from_matrix(matrix)


def convert_rotations(params: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """``(..., k)`` parameters in convention ``source`` -> ``(..., m)`` in convention ``target``
    (angles in the units of each convention, see docs/conventions.md)."""
    return convention_from_matrix(matrix_from_convention(params, source), target)
