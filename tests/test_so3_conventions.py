"""The RELION and cryoSPARC pose conventions against the verified test vectors (written from
RELION's, EMAN2's and cryoSPARC's own code), and the representations against scipy."""

import itertools
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3
from cryomath.errors import InvalidInputError, NotARotationError
from tests.conftest import REFERENCE

VECTORS = json.loads((REFERENCE / "euler-test-vectors.json").read_text())
A_KEY = "A (RELION Euler_angles2matrix, row-major)"


def _wrapped_difference(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("case", VECTORS, ids=[str(c["relion_in(rot,tilt,psi)"]) for c in VECTORS])
def test_relion_and_cryosparc_conventions_reproduce_reference_vectors(case):
    a_ref = np.array(case[A_KEY])
    a = so3.matrix_from_relion_euler(
        torch.tensor(case["relion_in(rot,tilt,psi)"], dtype=torch.float64)
    )
    np.testing.assert_allclose(a.numpy(), a_ref, atol=1e-8)  # the file holds 8 decimals
    # Reading angles back from RELION's matrix follows Euler_matrix2angles, gimbal lock included.
    # The matrix in the file is rounded to 1e-8, which moves angles by up to ~1e-6 degrees.
    angles = so3.relion_euler_from_matrix(torch.tensor(a_ref))
    assert _wrapped_difference(angles.numpy(), case["RELION Euler_matrix2angles(A)"]).max() < 1e-6
    angles_exact = so3.relion_euler_from_matrix(a)
    assert (
        _wrapped_difference(angles_exact.numpy(), case["RELION Euler_matrix2angles(A)"]).max()
        < 1e-6
    )
    pose = so3.cryosparc_pose_from_matrix(a)
    np.testing.assert_allclose(pose.numpy(), case["cryoSPARC pose = rotvec(A^T) [rad]"], atol=1e-7)
    np.testing.assert_allclose(so3.matrix_from_cryosparc_pose(pose).numpy(), a_ref, atol=1e-8)
    q = so3.quaternion_from_matrix(a.T).numpy()
    q_ref = np.array(case["Hamilton quat of A^T (w,x,y,z)"])  # q and -q are the same rotation
    np.testing.assert_allclose(q * np.sign(q @ q_ref), q_ref, atol=1e-7)


SEQUENCES = [
    "".join(p) for p in itertools.product("xyz", repeat=3) if p[0] != p[1] and p[1] != p[2]
]


@pytest.mark.parametrize("seq", SEQUENCES + [s.upper() for s in SEQUENCES])
def test_euler_matrices_equal_scipy_for_all_24_sequences(seq):
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, size=(50, 3))
    ours = so3.matrix_from_euler(torch.tensor(angles), seq).numpy()
    np.testing.assert_allclose(ours, Rotation.from_euler(seq, angles).as_matrix(), atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotvec_and_quaternion_agree_with_scipy_and_keep_dtype(dtype):
    r = Rotation.random(500, random_state=1)
    m = torch.tensor(r.as_matrix(), dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    rotvec = so3.rotvec_from_matrix(m)
    assert rotvec.dtype == dtype
    np.testing.assert_allclose(rotvec.double().numpy(), r.as_rotvec(), atol=tol * 10)
    np.testing.assert_allclose(
        so3.matrix_from_rotvec(rotvec).double().numpy(), r.as_matrix(), atol=tol * 10
    )
    q_scipy = r.as_quat(canonical=True)[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(
        so3.quaternion_from_matrix(m).double().numpy(), q_scipy, atol=tol * 10
    )


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-5, np.pi - 1e-7, np.pi])
def test_rotvec_gradients_are_finite_at_identity_and_pi(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    v = (axis / axis.norm() * angle).requires_grad_(True)
    m = so3.matrix_from_rotvec(v)
    (m * torch.arange(9.0, dtype=torch.float64).reshape(3, 3)).sum().backward()
    assert torch.isfinite(v.grad).all()
    m = torch.tensor(Rotation.from_rotvec(v.detach().numpy()).as_matrix(), requires_grad=True)
    back = so3.rotvec_from_matrix(m)
    back.sum().backward()
    assert torch.isfinite(m.grad).all()
    expected = Rotation.from_matrix(m.detach().numpy()).magnitude()
    assert float(back.detach().norm()) == pytest.approx(expected, abs=1e-12)


def test_small_angle_rotvec_is_accurate_in_float32():
    v = torch.tensor([1e-6, -2e-6, 3e-7], dtype=torch.float32)
    back = so3.rotvec_from_quaternion(so3.quaternion_from_rotvec(v))
    torch.testing.assert_close(back, v, rtol=1e-5, atol=0)


def test_rotation_checks_reject_bad_matrices():
    good = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    so3.check_rotation_matrices(good)
    with pytest.raises(NotARotationError, match="det"):
        so3.check_rotation_matrices(torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)))
    with pytest.raises(NotARotationError):
        so3.check_rotation_matrices(good * 1.01)
    with pytest.raises(InvalidInputError, match="NaN"):
        so3.check_rotation_matrices(torch.full((3, 3), float("nan")))
    with pytest.raises(InvalidInputError):
        so3.matrix_from_euler(torch.zeros(3), "zzy")
