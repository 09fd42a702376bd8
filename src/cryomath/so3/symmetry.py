"""Point groups Cn, Dn, T, O, I as rotation matrices, in RELION's settings by default.

Settings (conventions-facts.md; RELION's own operators, from ``relion_refine
--print_symmetry_ops``, are the test oracle):
- ``relion``: Cn about z; Dn adds a 2-fold on x; T: 3-fold on z, 2-fold on
  ``(0, sqrt(2/3), sqrt(1/3))``; O: 4-fold on z, 3-fold on ``(1, 1, 1)``; I1 (= scipy 'I',
  Heymann's standard): 2-fold on z, 5-fold on ``(0, 1, phi)``; I2 = Rz(90) I1 Rz(90)^T; I3:
  5-fold on z, 3-fold in the xz plane; I4 = Rz(36) I3 Rz(36)^T.
- ``eman``: Dn and O as RELION; ``icos`` = I4; ``tet`` = RELION T turned 180 degrees about z.
- ``cryosparc``: Dn 2-fold on y; I1, I2 as RELION.
- ``scipy``: ``Rotation.create_group``: Dn 2-fold on x, T 2-folds on x, y, z, O as RELION, I = I1.

Poses: a map with symmetry g looks the same from A and from ``A g`` (RELION's
``relion_particle_symmetry_expand`` writes ``A g`` for every operator g).
"""

import math
import re
from functools import lru_cache

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.axis_angle import matrix_from_rotvec
from cryomath.so3.checks import check_rotation_matrices
from cryomath.so3.euler import matrix_about_axis

_GOLDEN = (1 + math.sqrt(5)) / 2
# angle between a 5-fold and a neighbouring 3-fold axis of the icosahedron
_FIVE_THREE = math.acos(math.sqrt((5 + 2 * math.sqrt(5)) / 15))


def _about(axis, order: int) -> torch.Tensor:
    v = torch.tensor(axis, dtype=torch.float64)
    return matrix_from_rotvec(v / v.norm() * (2 * math.pi / order))


def _close(generators: list[torch.Tensor]) -> torch.Tensor:
    """All products of the generators (the group they generate), identity first."""
    elements = [torch.eye(3, dtype=torch.float64)]
    frontier = list(elements)
    while frontier:
        new = []
        for a in frontier:
            for g in generators:
                c = g @ a
                if all(float((c - e).abs().max()) > 1e-9 for e in elements):
                    elements.append(c)
                    new.append(c)
        frontier = new
    return torch.stack(elements)


def _conjugate(group: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    return rotation @ group @ rotation.T


def _rz(degrees: float) -> torch.Tensor:
    return matrix_about_axis(torch.tensor(math.radians(degrees), dtype=torch.float64), "z")


@lru_cache(maxsize=64)
def _relion(name: str) -> torch.Tensor:
    kind, n = re.fullmatch(r"([CDTOI])(\d*)", name).groups()
    if kind in "CD":
        if not n or int(n) < 1:
            raise InvalidInputError(f"{name}: C and D need an order, e.g. C4, D7")
        if int(n) > 1000:  # no assembly has more; the operators would only cost time
            raise InvalidInputError(f"{name}: orders above 1000 are not supported")
        gens = [_about((0, 0, 1), int(n))] + ([_about((1, 0, 0), 2)] if kind == "D" else [])
        return _close(gens)
    if kind == "T" and not n:
        return _close([_about((0, 0, 1), 3), _about((0, math.sqrt(2 / 3), math.sqrt(1 / 3)), 2)])
    if kind == "O" and not n:
        return _close([_about((0, 0, 1), 4), _about((1, 1, 1), 3)])
    if kind == "I" and n in ("", "1", "2", "3", "4"):
        if n in ("", "1", "2"):
            i1 = _close([_about((0, 0, 1), 2), _about((0, 1, _GOLDEN), 5)])
            return i1 if n != "2" else _conjugate(i1, _rz(90))
        a = _FIVE_THREE
        i3 = _close([_about((0, 0, 1), 5), _about((math.sin(a), 0, math.cos(a)), 3)])
        return i3 if n == "3" else _conjugate(i3, _rz(36))
    raise InvalidInputError(f"unknown point group {name!r}")


def point_group(
    name: str, setting: str = "relion", dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """``(|G|, 3, 3)`` rotation matrices of point group ``name`` (``C1``, ``C4``, ``D7``, ``T``,
    ``O``, ``I``/``I1``..``I4``; EMAN2's ``icos``/``tet``/``oct`` too) in ``setting``."""
    key, setting = name.strip().upper(), setting.lower()
    if not re.fullmatch(r"[CDTOI]\d*|ICOS|TET|OCT", key):
        raise InvalidInputError(f"unknown point group {name!r}")
    if setting == "relion":
        group = _relion(key.replace("ICOS", "I4").replace("TET", "T").replace("OCT", "O"))
    elif setting == "eman":
        key = {"ICOS": "I4", "I": "I4", "OCT": "O", "TET": "T"}.get(key, key)
        group = _relion(key)
        group = _conjugate(group, _rz(180)) if key == "T" else group
    elif setting == "cryosparc":
        if key[0] in "TO" or key in ("I3", "I4", "ICOS", "TET", "OCT"):
            raise InvalidInputError(f"the cryoSPARC setting of {name} is not known here")
        group = _relion(key)
        group = _conjugate(group, _rz(90)) if key[0] == "D" else group
    elif setting == "scipy":
        if key in ("I2", "I3", "I4", "ICOS", "TET", "OCT"):
            raise InvalidInputError(f"scipy has no group {name}")
        group = _relion("I1" if key == "I" else key)
        if key == "T":  # scipy's T has its 2-folds on the axes
            group = _close([_about((1, 1, 1), 3), _about((0, 0, 1), 2)])
    else:
        raise InvalidInputError(f"unknown symmetry setting {setting!r}")
    return group.to(dtype=dtype, device=device, copy=True)


Symmetry = str | torch.Tensor | None
"""How every API takes a symmetry: a point-group name (RELION's setting), its operators
``(|G|, 3, 3)``, or None for C1."""


def as_point_group(symmetry: Symmetry, dtype: torch.dtype = torch.float64, device=None):
    """The operators ``(|G|, 3, 3)`` of a :data:`Symmetry` (a name in RELION's setting, the
    operators themselves, checked to be rotations, or None: the identity alone)."""
    if symmetry is None:
        return torch.eye(3, dtype=dtype, device=device)[None]
    if isinstance(symmetry, str):
        return point_group(symmetry, dtype=dtype, device=device)
    group = torch.as_tensor(symmetry)
    if group.ndim != 3 or tuple(group.shape[-2:]) != (3, 3):
        raise InvalidInputError(f"symmetry operators must be (|G|, 3, 3), got {tuple(group.shape)}")
    check_rotation_matrices(group.double())
    return group.to(dtype=dtype, device=device)


def symmetry_expand(poses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` poses A -> ``(..., |G|, 3, 3)`` equivalent poses ``A g``."""
    return poses[..., None, :, :] @ group


def closest_symmetric_pose(
    poses: torch.Tensor, reference: torch.Tensor, group: torch.Tensor
) -> torch.Tensor:
    """Of the poses ``A g`` (``poses (..., 3, 3)``, ``group (G, 3, 3)``), the one nearest
    (geodesic) to ``reference (..., 3, 3)``: ``(..., 3, 3)``."""
    from cryomath.so3.metrics import geodesic_distance

    candidates = symmetry_expand(poses, group)
    best = geodesic_distance(candidates, reference[..., None, :, :]).argmin(-1)
    index = best[..., None, None, None].expand(*best.shape, 1, 3, 3)
    return torch.take_along_dim(candidates, index, dim=-3).squeeze(-3)


def symmetric_geodesic_distance(
    r: torch.Tensor, s: torch.Tensor, group: torch.Tensor
) -> torch.Tensor:
    """``min over g`` of the geodesic angle (radians) between poses ``r (..., 3, 3)`` and
    ``s g`` for ``group (G, 3, 3)``: ``(...)``."""
    from cryomath.so3.metrics import geodesic_distance

    return geodesic_distance(r[..., None, :, :], symmetry_expand(s, group)).amin(-1)


# A direction near +z, off every symmetry axis: its Dirichlet cell is the asymmetric unit.
# For Cn it is the wedge 0 <= phi <= 360/n; Dn adds theta <= 90 (up to ~1e-8 rad).
def _reference_direction(order_z: int, dtype, device) -> torch.Tensor:
    phi, theta = math.pi / order_z, 1e-8
    return torch.tensor(
        [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)],
        dtype=dtype,
        device=device,
    )


def in_asymmetric_unit(directions: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` unit projection directions (the third row of A) -> ``(...)`` bool: whether
    each lies in the asymmetric unit, the Dirichlet cell ``{d : <d, p> >= <g d, p>}`` of a
    reference direction p just off +z (boundaries included)."""
    order_z = int(((group[:, 2, 2] - 1).abs() < 1e-9).sum())  # rotations about z
    p = _reference_direction(order_z, directions.dtype, directions.device)
    mates = group.to(directions) @ p  # g p; <g d, p> = <d, g^T p>, and G is closed
    return directions @ p >= (directions @ mates.T).amax(-1) - 1e-12
