"""Rotations on SO(3): representations and the cryo-EM pose conventions.

The internal pose is RELION's matrix A (docs/conventions.md). Matrices act on column vectors
``(x, y, z)``; quaternions are ``(w, x, y, z)``; angles are radians except in the named
package conventions, which use each package's own units.
"""

from cryomath.so3.axis_angle import (
    matrix_from_rotvec,
    quaternion_from_rotvec,
    rotvec_from_matrix,
    rotvec_from_quaternion,
)
from cryomath.so3.checks import check_rotation_matrices
from cryomath.so3.conventions.cryosparc import (
    cryosparc_pose_from_matrix,
    matrix_from_cryosparc_pose,
)
from cryomath.so3.conventions.relion import matrix_from_relion_euler, relion_euler_from_matrix
from cryomath.so3.euler import matrix_about_axis, matrix_from_euler
from cryomath.so3.quaternion import matrix_from_quaternion, quaternion_from_matrix

__all__ = [
    "check_rotation_matrices",
    "cryosparc_pose_from_matrix",
    "matrix_about_axis",
    "matrix_from_cryosparc_pose",
    "matrix_from_euler",
    "matrix_from_quaternion",
    "matrix_from_relion_euler",
    "matrix_from_rotvec",
    "quaternion_from_matrix",
    "quaternion_from_rotvec",
    "relion_euler_from_matrix",
    "rotvec_from_matrix",
    "rotvec_from_quaternion",
]
