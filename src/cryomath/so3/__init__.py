"""Rotations on SO(3): representations, the cryo-EM pose conventions, metrics, averaging,
grids, distributions, symmetry and optimisation.

The internal pose is RELION's matrix A (docs/conventions.md). Matrices act on column vectors
``(x, y, z)``; quaternions are ``(w, x, y, z)``; angles are radians except in the named
package conventions (``so3.conventions``), which use each package's own units. Every function
takes leading batch dims and keeps the caller's dtype and device.
"""

from cryomath.so3 import distributions as distributions
from cryomath.so3 import grids as grids
from cryomath.so3.act import (
    compose,
    compose_quaternions,
    invert,
    invert_quaternion,
    projection_directions,
    rotate_points,
    rotate_points_quaternion,
)
from cryomath.so3.averaging import (
    chordal_mean,
    karcher_mean,
    pose_errors_degrees,
    quaternion_mean,
    synchronize,
    weiszfeld_median,
)
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
from cryomath.so3.conventions.registry import (
    CONVENTIONS,
    convention_from_matrix,
    convert_rotations,
    get_convention,
    matrix_from_convention,
)
from cryomath.so3.conventions.relion import matrix_from_relion_euler, relion_euler_from_matrix
from cryomath.so3.euler import euler_from_matrix, matrix_about_axis, matrix_from_euler
from cryomath.so3.lie import exp_map, hat, log_map, right_jacobian, vee
from cryomath.so3.metrics import (
    angle_from_chordal,
    angle_from_quaternion_distance,
    chordal_distance,
    chordal_from_angle,
    geodesic_distance,
    pairwise_geodesic_distance,
    quaternion_distance,
    quaternion_from_angle,
    quaternion_geodesic_distance,
)
from cryomath.so3.optimize import fit_rotation, rotated_point_jacobian
from cryomath.so3.orthogonalize import nearest_rotation
from cryomath.so3.procrustes import kabsch, wahba
from cryomath.so3.quaternion import (
    canonical_quaternion,
    matrix_from_quaternion,
    quaternion_conjugate,
    quaternion_from_matrix,
    quaternion_multiply,
)
from cryomath.so3.random import random_quaternions, random_rotations
from cryomath.so3.rigid import (
    apply_rigid,
    compose_rigid,
    decompose_rigid,
    invert_rigid,
    rigid_matrix,
)
from cryomath.so3.sixd import matrix_from_sixd, sixd_from_matrix
from cryomath.so3.symmetry import (
    Symmetry,
    as_point_group,
    closest_symmetric_pose,
    in_asymmetric_unit,
    point_group,
    symmetric_geodesic_distance,
    symmetry_expand,
)

__all__ = [
    "CONVENTIONS",
    "Symmetry",
    "angle_from_chordal",
    "angle_from_quaternion_distance",
    "apply_rigid",
    "as_point_group",
    "canonical_quaternion",
    "check_rotation_matrices",
    "chordal_distance",
    "chordal_from_angle",
    "chordal_mean",
    "closest_symmetric_pose",
    "compose",
    "compose_quaternions",
    "compose_rigid",
    "convention_from_matrix",
    "convert_rotations",
    "cryosparc_pose_from_matrix",
    "decompose_rigid",
    "euler_from_matrix",
    "exp_map",
    "fit_rotation",
    "geodesic_distance",
    "get_convention",
    "hat",
    "in_asymmetric_unit",
    "invert",
    "invert_quaternion",
    "invert_rigid",
    "kabsch",
    "karcher_mean",
    "log_map",
    "matrix_about_axis",
    "matrix_from_convention",
    "matrix_from_cryosparc_pose",
    "matrix_from_euler",
    "matrix_from_quaternion",
    "matrix_from_relion_euler",
    "matrix_from_rotvec",
    "matrix_from_sixd",
    "nearest_rotation",
    "pairwise_geodesic_distance",
    "point_group",
    "pose_errors_degrees",
    "projection_directions",
    "quaternion_conjugate",
    "quaternion_distance",
    "quaternion_from_angle",
    "quaternion_from_matrix",
    "quaternion_from_rotvec",
    "quaternion_geodesic_distance",
    "quaternion_mean",
    "quaternion_multiply",
    "random_quaternions",
    "random_rotations",
    "relion_euler_from_matrix",
    "right_jacobian",
    "rigid_matrix",
    "rotate_points",
    "rotate_points_quaternion",
    "rotated_point_jacobian",
    "rotvec_from_matrix",
    "rotvec_from_quaternion",
    "sixd_from_matrix",
    "symmetric_geodesic_distance",
    "symmetry_expand",
    "synchronize",
    "vee",
    "wahba",
    "weiszfeld_median",
]
