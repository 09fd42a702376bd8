"""Representations: Euler angles (all sequences), 6-D, exp/log, projection onto SO(3), against
scipy as oracle, with hypothesis round trips near gimbal lock and near pi, and gradients."""

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cryomath import so3
from cryomath.errors import InvalidInputError, NotARotationError
from cryomath.so3.euler import SCIPY_GIMBAL_TOLERANCE_RAD

SEQUENCES = [
    "".join(p) for p in itertools.product("xyz", repeat=3) if p[0] != p[1] and p[1] != p[2]
]
ALL_SEQUENCES = SEQUENCES + [s.upper() for s in SEQUENCES]


def _gimbal_angles(seq: str, rng) -> np.ndarray:
    """Random angles plus ones exactly at, and 1e-9 rad from, gimbal lock."""
    angles = rng.uniform(-np.pi, np.pi, (60, 3))
    proper = seq[0].lower() == seq[2].lower()
    locks = (0.0, np.pi) if proper else (np.pi / 2, -np.pi / 2)
    angles[:20, 1] = locks[0]
    angles[20:40, 1] = locks[1]
    angles[40:50, 1] = locks[0] + (1e-9 if locks[0] != np.pi else -1e-9)
    return angles


@pytest.mark.parametrize("seq", ALL_SEQUENCES)
def test_euler_from_matrix_equals_scipy_including_gimbal_lock(seq):
    rng = np.random.default_rng(0)
    m = np.concatenate(
        [
            Rotation.random(200, random_state=1).as_matrix(),
            Rotation.from_euler(seq, _gimbal_angles(seq, rng)).as_matrix(),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns at gimbal lock
        expected = Rotation.from_matrix(m).as_euler(seq)
    ours = so3.euler_from_matrix(torch.tensor(m), seq, SCIPY_GIMBAL_TOLERANCE_RAD).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    back = so3.matrix_from_euler(torch.tensor(ours), seq).numpy()
    # within 1e-7 rad of gimbal lock the third angle is set to 0 (as scipy does)
    np.testing.assert_allclose(back, m, atol=1e-12 + 2e-9)


rotvecs = st.tuples(
    st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(0, math.pi)
).filter(lambda t: t[0] ** 2 + t[1] ** 2 + t[2] ** 2 > 1e-3)


def _matrix(t, dtype):
    axis = torch.tensor(t[:3], dtype=torch.float64)
    return so3.matrix_from_rotvec(axis / axis.norm() * t[3]).to(dtype)


@settings(max_examples=200, deadline=None)
@given(rotvecs, st.sampled_from(ALL_SEQUENCES), st.sampled_from([torch.float32, torch.float64]))
def test_round_trips_through_every_representation(t, seq, dtype):
    m = _matrix(t, dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for back in (
        so3.matrix_from_quaternion(so3.quaternion_from_matrix(m)),
        so3.exp_map(so3.log_map(m)),
        so3.matrix_from_euler(so3.euler_from_matrix(m, seq), seq),
        so3.matrix_from_sixd(so3.sixd_from_matrix(m)),
        so3.matrix_from_sixd(so3.sixd_from_matrix(m, "rows"), "rows"),
        so3.nearest_rotation(m),
    ):
        assert back.dtype == dtype
        assert float((back - m).abs().max()) <= 4 * tol


@settings(max_examples=100, deadline=None)
@given(st.floats(-math.pi, math.pi), st.floats(-1e-6, 1e-6), st.floats(-math.pi, math.pi))
def test_round_trips_near_gimbal_lock(a, b, c):
    for seq, second in (("ZYZ", b), ("ZYZ", math.pi - abs(b)), ("XYZ", math.pi / 2 + b)):
        angles = torch.tensor([a, second, c], dtype=torch.float64)
        m = so3.matrix_from_euler(angles, seq)
        back = so3.matrix_from_euler(so3.euler_from_matrix(m, seq), seq)
        assert float((back - m).abs().max()) < 1e-12
        m32 = m.float()
        back32 = so3.matrix_from_euler(so3.euler_from_matrix(m32, seq), seq)
        assert float((back32 - m32).abs().max()) < 1e-5


def test_sixd_layouts_are_the_first_two_columns_and_rows():
    m = torch.tensor(Rotation.random(10, random_state=2).as_matrix())
    torch.testing.assert_close(so3.sixd_from_matrix(m)[:, :3], m[:, :, 0])
    torch.testing.assert_close(so3.sixd_from_matrix(m)[:, 3:], m[:, :, 1])
    torch.testing.assert_close(so3.sixd_from_matrix(m, "rows"), m[:, :2, :].reshape(10, 6))
    # Gram-Schmidt of any non-degenerate 6-vector is a rotation whose first column is a / |a|
    x = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = so3.matrix_from_sixd(x)
    so3.check_rotation_matrices(r, atol=1e-12)
    torch.testing.assert_close(r[:, :, 0], x[:, :3] / x[:, :3].norm(dim=-1, keepdim=True))
    with pytest.raises(InvalidInputError):
        so3.sixd_from_matrix(m, "diagonal")


def test_exp_and_log_equal_matrix_exponential_and_logarithm():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(20, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    for v in axes * np.geomspace(1e-8, 3.1, 20)[:, None]:
        expm = scipy.linalg.expm(so3.hat(torch.tensor(v)).numpy())
        np.testing.assert_allclose(so3.exp_map(torch.tensor(v)).numpy(), expm, atol=1e-14)
        log = so3.log_map(torch.tensor(expm)).numpy()
        np.testing.assert_allclose(log, v, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(so3.vee(so3.hat(torch.tensor(v))), torch.tensor(v))


def test_right_jacobian_against_the_matrix_exponential_by_finite_differences():
    # exp(v + h e_i) ~ exp(v) exp(h J_r(v) e_i): column i is log(exp(v)^T exp(v + h e_i)) / h
    # with the logarithm and exponential taken from scipy (independent of ours)
    rng = np.random.default_rng(4)
    h = 1e-6
    for v in [*rng.normal(size=(5, 3)), np.array([1e-9, -2e-9, 0.0]), np.array([0.0, 0.0, 3.0])]:
        base = scipy.linalg.expm(so3.hat(torch.tensor(v)).numpy())
        columns = []
        for i in range(3):
            e = np.zeros(3)
            e[i] = h
            moved = scipy.linalg.expm(so3.hat(torch.tensor(v + e)).numpy())
            columns.append(Rotation.from_matrix(base.T @ moved).as_rotvec() / h)
        jacobian = so3.right_jacobian(torch.tensor(v)).numpy()
        np.testing.assert_allclose(jacobian, np.stack(columns, -1), atol=2e-6)


def test_nearest_rotation_is_the_polar_factor_and_rejects_far_matrices():
    r = Rotation.random(20, random_state=4).as_matrix()
    noisy = r + np.random.default_rng(5).normal(scale=1e-3, size=r.shape)
    ours = so3.nearest_rotation(torch.tensor(noisy)).numpy()
    polar = np.stack([scipy.linalg.polar(m)[0] for m in noisy])
    np.testing.assert_allclose(ours, polar, atol=1e-12)
    with pytest.raises(NotARotationError, match="far from any rotation"):
        so3.nearest_rotation(torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    with pytest.raises(NotARotationError):
        so3.nearest_rotation(torch.tensor([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(InvalidInputError, match="NaN"):
        so3.nearest_rotation(torch.full((3, 3), float("nan")))


@pytest.mark.parametrize("angle", [0.0, 1e-8, math.pi - 1e-7, math.pi])
def test_gradients_are_finite_at_identity_and_pi(angle):
    axis = torch.tensor([0.36, -0.48, 0.8], dtype=torch.float64)
    m0 = so3.matrix_from_rotvec(axis * angle)
    weights = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(3, 3)
    for f in (
        so3.quaternion_from_matrix,
        so3.log_map,
        so3.sixd_from_matrix,
        lambda m: so3.geodesic_distance(m, torch.eye(3, dtype=m.dtype)),
    ):
        m = m0.clone().requires_grad_(True)
        f(m).sum().backward()
        assert torch.isfinite(m.grad).all()
    v = (axis * angle).requires_grad_(True)
    (so3.exp_map(v) * weights).sum().backward()
    assert torch.isfinite(v.grad).all()
    x = so3.sixd_from_matrix(m0).requires_grad_(True)
    (so3.matrix_from_sixd(x) * weights).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradcheck_of_conversions_in_float64():
    v = torch.tensor([[0.3, -0.2, 0.5], [1e-6, 2e-6, -1e-6]], dtype=torch.float64)
    v.requires_grad_(True)
    assert torch.autograd.gradcheck(so3.exp_map, (v,))
    m = so3.exp_map(v.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: so3.euler_from_matrix(x[:1], "ZYZ"), (m,))
    assert torch.autograd.gradcheck(so3.quaternion_from_matrix, (m,))


def test_quaternion_algebra_matches_matrix_products():
    q = so3.random_quaternions(100, 0)
    p = so3.random_quaternions(100, 1)
    torch.testing.assert_close(
        so3.matrix_from_quaternion(so3.quaternion_multiply(q, p)),
        so3.matrix_from_quaternion(q) @ so3.matrix_from_quaternion(p),
    )
    torch.testing.assert_close(
        so3.matrix_from_quaternion(so3.quaternion_conjugate(q)),
        so3.matrix_from_quaternion(q).transpose(-1, -2),
    )
    flipped = so3.canonical_quaternion(-q)
    assert bool((flipped[:, 0] >= 0).all())
    torch.testing.assert_close(flipped, q)
