"""The continuous 6-D representation of rotations (Zhou et al., CVPR 2019).

``columns`` (the paper's): the first two columns of R, flattened as ``(R00, R10, R20, R01, R11,
R21)``. ``rows`` (pytorch3d's variant): the first two rows ``(R00, R01, R02, R10, R11, R12)``.
Back to a matrix by Gram-Schmidt; any 6-vector whose two halves are independent maps to SO(3).
"""

import torch

from cryomath.errors import InvalidInputError

_LAYOUTS = ("columns", "rows")


def _check_layout(layout: str) -> None:
    if layout not in _LAYOUTS:
        raise InvalidInputError(f"6-D layout must be one of {_LAYOUTS}, got {layout!r}")


def sixd_from_matrix(matrix: torch.Tensor, layout: str = "columns") -> torch.Tensor:
    """``(..., 3, 3)`` rotations -> ``(..., 6)``."""
    _check_layout(layout)
    m = matrix if layout == "rows" else matrix.transpose(-1, -2)
    return m[..., :2, :].flatten(-2)


def matrix_from_sixd(x: torch.Tensor, layout: str = "columns") -> torch.Tensor:
    """``(..., 6)`` -> ``(..., 3, 3)`` rotations by Gram-Schmidt on the two 3-vectors."""
    _check_layout(layout)
    a, b = x[..., :3], x[..., 3:]
    e1 = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    b = b - (e1 * b).sum(-1, keepdim=True) * e1
    e2 = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    m = torch.stack([e1, e2, e3], dim=-2)  # rows
    return m if layout == "rows" else m.transpose(-1, -2)
