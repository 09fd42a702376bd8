"""The pose conventions against the verified test vectors (written from RELION's, EMAN2's and
cryoSPARC's own code) and cryoDRGN's goldens, and the convention registry."""

import itertools
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3
from cryomath.errors import InvalidInputError, NotARotationError
from cryomath.io import read_star
from tests.conftest import REFERENCE

VECTORS = json.loads((REFERENCE / "euler-test-vectors.json").read_text())
A_KEY = "A (RELION Euler_angles2matrix, row-major)"


def _wrapped_difference(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def test_projection_directions_are_relions_viewing_directions():
    # RELION's Euler_angles2direction: (sin tilt cos rot, sin tilt sin rot, cos tilt), which is
    # the third row of RELION's own matrix in the test vectors; psi does not move it.
    angles = torch.tensor([c["relion_in(rot,tilt,psi)"] for c in VECTORS], dtype=torch.float64)
    found = so3.projection_directions(so3.matrix_from_relion_euler(angles))
    np.testing.assert_allclose(found.numpy(), np.array([c[A_KEY] for c in VECTORS])[:, 2],
                               atol=1e-8)  # fmt: skip
    rot, tilt = np.deg2rad(angles[:, 0].numpy()), np.deg2rad(angles[:, 1].numpy())
    expected = np.stack([np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)], -1)
    np.testing.assert_allclose(found.numpy(), expected, atol=1e-12)


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


EMAN_KEYS = {
    "eman": ("az", "alt", "phi"),
    "imagic": ("alpha", "beta", "gamma"),
    "spider": ("phi", "theta", "psi"),
    "mrc": ("phi", "theta", "omega"),
    "xyz": ("xtilt", "ytilt", "ztilt"),
    "quaternion": ("e0", "e1", "e2", "e3"),
    "spin": ("omega", "n1", "n2", "n3"),
    "sgirot": ("q", "n1", "n2", "n3"),
    "spinvec": ("v1", "v2", "v3"),
}
ANGLE_CONVENTIONS = ("eman", "imagic", "spider", "mrc", "xyz")


@pytest.mark.parametrize("name", sorted(EMAN_KEYS))
@pytest.mark.parametrize("case", VECTORS, ids=[str(c["relion_in(rot,tilt,psi)"]) for c in VECTORS])
def test_eman2_conventions_reproduce_eman2_output(case, name):
    a = torch.tensor(case[A_KEY], dtype=torch.float64)
    eman = np.array([case[f"EMAN2 get_rotation('{name}')"][k] for k in EMAN_KEYS[name]])
    ours = so3.convention_from_matrix(a, name).numpy()
    if name == "xyz" and case["relion_in(rot,tilt,psi)"] == [40.0, 180.0, 50.0]:
        # EMAN2's xyz output here does not rebuild EMAN2's own matrix (0.75 off): an EMAN2 bug,
        # like its unwrapped ztilt. Ours does, and the other two angles agree.
        assert (so3.matrix_from_convention(torch.tensor(eman), "xyz") - a).abs().max() > 0.5
        assert _wrapped_difference(ours[:2], eman[:2]).max() < 1e-6
        torch.testing.assert_close(so3.matrix_from_convention(torch.tensor(ours), "xyz"), a)
        return
    if name in ANGLE_CONVENTIONS:  # EMAN2 prints 6 decimals; xyz's ztilt may exceed 360 there
        assert _wrapped_difference(ours, eman).max() < 1e-6
        if name != "xyz":
            np.testing.assert_allclose(ours, eman, atol=1e-6)  # same ranges and gimbal rule
    else:
        np.testing.assert_allclose(ours, eman, atol=1e-6)
    back = so3.matrix_from_convention(torch.tensor(eman), name)
    np.testing.assert_allclose(back.numpy(), a.numpy(), atol=1e-5)  # 6 printed decimals


@pytest.mark.parametrize("case", VECTORS, ids=[str(c["relion_in(rot,tilt,psi)"]) for c in VECTORS])
def test_scipy_and_registry_conventions_reproduce_reference_vectors(case):
    a = torch.tensor(case[A_KEY], dtype=torch.float64)
    scipy_zyz = so3.convention_from_matrix(a, "scipy:ZYZ").numpy()
    np.testing.assert_allclose(
        scipy_zyz, case["scipy from_matrix(A.T).as_euler('ZYZ') [deg]"], atol=1e-6
    )
    relion = so3.convert_rotations(
        torch.tensor(case["relion_in(rot,tilt,psi)"], dtype=torch.float64), "relion", "relion"
    )
    assert _wrapped_difference(relion.numpy(), case["RELION Euler_matrix2angles(A)"]).max() < 1e-6
    cryosparc = so3.convention_from_matrix(a, "cryosparc").numpy()
    np.testing.assert_allclose(cryosparc, case["cryoSPARC pose = rotvec(A^T) [rad]"], atol=1e-7)


@pytest.mark.parametrize("seq", ["ZYZ", "zxz", "XYZ", "zyx", "YXY"])
def test_scipy_convention_equals_scipy_for_any_sequence(seq):
    r = Rotation.random(200, random_state=3)
    a = torch.tensor(r.as_matrix().transpose(0, 2, 1))  # the pose whose scipy rotation is r
    ours = so3.convention_from_matrix(a, f"scipy:{seq}").numpy()
    np.testing.assert_allclose(ours, r.as_euler(seq, degrees=True), atol=1e-9)


def test_aspire_and_cryojax_conventions_follow_their_definitions():
    angles = np.random.default_rng(4).uniform([-180, 0, -180], [180, 180, 180], (100, 3))
    a = so3.matrix_from_relion_euler(torch.tensor(angles))
    # ASPIRE: Rotation.from_euler(radians(rot, tilt, psi)) builds scipy 'ZYZ' = A^T
    aspire_matrix = Rotation.from_euler("ZYZ", np.radians(angles)).as_matrix()
    np.testing.assert_allclose(
        so3.matrix_from_convention(torch.tensor(np.radians(angles)), "aspire").numpy(),
        aspire_matrix.transpose(0, 2, 1),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        so3.convention_from_matrix(a, "aspire").numpy(), np.radians(angles), atol=1e-9
    )
    # cryoJAX: EulerAnglePose(-rot, -tilt, -psi) (active extrinsic zyz) is RELION's pose
    cryojax_matrix = Rotation.from_euler("zyz", -angles, degrees=True).as_matrix()
    np.testing.assert_allclose(a.numpy(), cryojax_matrix, atol=1e-12)
    np.testing.assert_allclose(
        so3.matrix_from_convention(torch.tensor(-angles), "cryojax").numpy(), a.numpy(), atol=1e-12
    )
    back = so3.convention_from_matrix(a, "cryojax")
    np.testing.assert_allclose(
        so3.matrix_from_convention(back, "cryojax").numpy(), a.numpy(), atol=1e-12
    )


def test_registry_reproduces_cryodrgn_goldens_from_raw_fields(data):
    import pickle

    cs = np.load(data / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs")
    with open(data / "cryodrgn_cryosparc" / "pose.cs.pkl", "rb") as f:
        golden_r, _ = pickle.load(f)
    pose = torch.tensor(cs["alignments3D/pose"].astype(np.float64))
    ours = so3.convert_rotations(pose, "cryosparc", "cryodrgn").reshape(-1, 3, 3)
    np.testing.assert_allclose(ours.numpy(), golden_r, atol=1e-6)
    star = read_star(data / "cryodrgn_relion" / "FinalRefinement-OriginalParticles-PfCRT.star")
    frame = next(b for b in star.values() if hasattr(b, "columns"))
    angles = frame[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(np.float64)
    with open(data / "cryodrgn_relion" / "pose.star.pkl", "rb") as f:
        golden_r, _ = pickle.load(f)
    ours = so3.convert_rotations(torch.tensor(angles), "relion", "cryodrgn").reshape(-1, 3, 3)
    np.testing.assert_allclose(ours.numpy(), golden_r, atol=1e-6)


def test_every_registered_convention_round_trips_random_poses():
    a = torch.tensor(Rotation.random(300, random_state=5).as_matrix())
    for name in [*so3.CONVENTIONS, "xmipp", "scipy:xyz"]:
        params = so3.convention_from_matrix(a, name)
        assert params.shape[-1] == len(so3.get_convention(name).parameters)
        back = so3.matrix_from_convention(params, name)
        torch.testing.assert_close(back, a, atol=1e-10, rtol=0, msg=name)


def test_registry_rejects_unknown_names_and_bad_shapes():
    with pytest.raises(InvalidInputError, match="unknown rotation convention"):
        so3.get_convention("euler")
    with pytest.raises(InvalidInputError, match="takes 3 numbers"):
        so3.matrix_from_convention(torch.zeros(4), "relion")
    with pytest.raises(InvalidInputError, match="NaN"):
        so3.matrix_from_convention(torch.tensor([float("nan"), 0.0, 0.0]), "eman")
    with pytest.raises(InvalidInputError):
        so3.get_convention("scipy:ZZY")
