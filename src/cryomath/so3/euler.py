"""Euler angles -> rotation matrices for all 12 axis sequences, intrinsic and extrinsic.

Sequences follow scipy: three letters from ``xyz``; upper case (``"ZYZ"``) is intrinsic (rotate
about the moving axes: ``R = R1(a) R2(b) R3(c)``), lower case (``"zyz"``) is extrinsic (fixed
axes: ``R = R3(c) R2(b) R1(a)``). Matrices are active (``v' = R v``); angles in radians.
"""

import torch

from cryomath.errors import InvalidInputError

_AXES = {"x": 0, "y": 1, "z": 2}


def matrix_about_axis(angle: torch.Tensor, axis: str) -> torch.Tensor:
    """Active rotation by ``angle (...)`` radians about ``axis`` in ``"xyz"``: ``(..., 3, 3)``."""
    if axis.lower() not in _AXES:
        raise InvalidInputError(f"axis must be one of x, y, z, got {axis!r}")
    i = _AXES[axis.lower()]
    j, k = (i + 1) % 3, (i + 2) % 3
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    entries = [[zero] * 3 for _ in range(3)]
    entries[i][i] = one
    entries[j][j], entries[j][k] = c, -s
    entries[k][j], entries[k][k] = s, c
    return torch.stack([torch.stack(row, -1) for row in entries], -2)


def _check_sequence(seq: str) -> None:
    if len(seq) != 3 or not (seq.isupper() or seq.islower()) or set(seq.lower()) - set(_AXES):
        raise InvalidInputError(
            f"Euler sequence must be 3 letters of xyz, all upper or all lower: {seq!r}"
        )
    if seq[0].lower() == seq[1].lower() or seq[1].lower() == seq[2].lower():
        raise InvalidInputError(f"consecutive Euler axes must differ: {seq!r}")


def matrix_from_euler(angles: torch.Tensor, seq: str) -> torch.Tensor:
    """``(..., 3)`` Euler angles (radians) in sequence ``seq`` -> ``(..., 3, 3)`` matrices."""
    _check_sequence(seq)
    m = [matrix_about_axis(angles[..., i], seq[i]) for i in range(3)]
    return m[0] @ m[1] @ m[2] if seq.isupper() else m[2] @ m[1] @ m[0]
