"""Acting with rotations, metrics (Hartley et al. 2013, Table 2), averaging, synchronisation
and optimisation, against analytic results and scipy."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cryomath import so3
from cryomath.errors import InvalidInputError


def _about_z(angle, dtype=torch.float64):
    return so3.matrix_about_axis(torch.tensor(angle, dtype=dtype), "z")


def test_rotating_points_by_matrix_and_quaternion_equals_scipy():
    r = Rotation.random(7, random_state=0)
    points = np.random.default_rng(1).normal(size=(7, 100, 3))
    expected = np.stack([r[i].apply(points[i]) for i in range(7)])
    m = torch.tensor(r.as_matrix())
    q = so3.quaternion_from_matrix(m)
    np.testing.assert_allclose(
        so3.rotate_points(m, torch.tensor(points)).numpy(), expected, atol=1e-12
    )
    np.testing.assert_allclose(
        so3.rotate_points_quaternion(q, torch.tensor(points)).numpy(), expected, atol=1e-12
    )
    # the study-group question: (1, 0, 0) rotated 180 degrees about z is (-1, 0, 0)
    q_z180 = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    out = so3.rotate_points_quaternion(q_z180, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(out.numpy(), [[-1.0, 0.0, 0.0]], atol=1e-15)


def test_composition_and_inverse():
    a, b = so3.random_rotations(10, 0), so3.random_rotations(10, 1)
    qa, qb = so3.quaternion_from_matrix(a), so3.quaternion_from_matrix(b)
    torch.testing.assert_close(so3.matrix_from_quaternion(so3.compose_quaternions(qa, qb)), a @ b)
    torch.testing.assert_close(
        so3.compose(a, so3.invert(a)), torch.eye(3, dtype=a.dtype).expand(10, 3, 3)
    )
    torch.testing.assert_close(
        so3.matrix_from_quaternion(so3.invert_quaternion(qa)), a.transpose(-1, -2)
    )


def test_rigid_composition_follows_the_sparx_rule():
    r1, r2 = so3.random_rotations(2, 3)
    t1 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    t2 = torch.tensor([0.3, 0.0, 4.0], dtype=torch.float64)
    s1, s2 = torch.tensor(1.5, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    first, second = so3.rigid_matrix(r1, t1, s1), so3.rigid_matrix(r2, t2, s2)
    combined = so3.compose_rigid(second, first)  # first, then second
    rotation, translation, scale = so3.decompose_rigid(combined)
    torch.testing.assert_close(rotation, r2 @ r1)
    torch.testing.assert_close(translation, s2 * r2 @ t1 + t2)  # t = s2 R2 t1 + t2
    torch.testing.assert_close(scale, s1 * s2)
    x = torch.randn(20, 3, dtype=torch.float64)
    torch.testing.assert_close(
        so3.apply_rigid(combined, x), so3.apply_rigid(second, so3.apply_rigid(first, x))
    )
    torch.testing.assert_close(
        so3.apply_rigid(so3.invert_rigid(combined), so3.apply_rigid(combined, x)), x
    )


def test_kabsch_and_wahba_equal_scipy_align_vectors_and_refuse_reflections():
    rng = np.random.default_rng(2)
    source = rng.normal(size=(50, 3))
    r = Rotation.random(random_state=4)
    target = r.apply(source) + np.array([1.0, 2.0, -3.0]) + rng.normal(scale=0.01, size=(50, 3))
    weights = rng.uniform(0.1, 2.0, 50)
    rotation, t = so3.kabsch(torch.tensor(source), torch.tensor(target), torch.tensor(weights))
    c_s = np.average(source, axis=0, weights=weights)
    c_t = np.average(target, axis=0, weights=weights)
    expected, _ = Rotation.align_vectors(target - c_t, source - c_s, weights=weights)
    np.testing.assert_allclose(rotation.numpy(), expected.as_matrix(), atol=1e-10)
    np.testing.assert_allclose(t.numpy(), c_t - expected.apply(c_s), atol=1e-10)
    mirrored = source * np.array([1.0, 1.0, -1.0])  # best fit would be a reflection
    rotation = so3.wahba(torch.tensor(source), torch.tensor(mirrored))
    assert float(torch.linalg.det(rotation)) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError):
        so3.kabsch(torch.zeros(5, 3), torch.zeros(4, 3))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_metric_identities_of_hartley_table_2(seed):
    r, s = so3.random_rotations(2, seed)
    theta = so3.geodesic_distance(r, s)
    expected = Rotation.from_matrix((r.T @ s).numpy()).magnitude()
    assert float(theta) == pytest.approx(expected, abs=1e-12)
    chord = so3.chordal_distance(r, s)
    assert float(chord) == pytest.approx(float(so3.chordal_from_angle(theta)), abs=1e-12)
    q, p = so3.quaternion_from_matrix(r), so3.quaternion_from_matrix(s)
    dq = so3.quaternion_distance(q, p)
    assert float(dq) == pytest.approx(float(so3.quaternion_from_angle(theta)), abs=1e-12)
    assert float(chord**2) == pytest.approx(8 * (1 - float((q * p).sum()) ** 2), abs=1e-12)
    assert float(so3.angle_from_chordal(chord)) == pytest.approx(float(theta), abs=1e-7)
    assert float(so3.angle_from_quaternion_distance(dq)) == pytest.approx(float(theta), abs=1e-7)
    assert float(so3.quaternion_geodesic_distance(q, -p)) == pytest.approx(float(theta), abs=1e-12)


@pytest.mark.parametrize("angle", [1e-7, 1e-5, 1e-3, 0.5, 2.0, math.pi - 1e-3, math.pi - 1e-6])
def test_geodesic_angle_is_accurate_at_both_ends_in_float32_and_float64(angle):
    r = _about_z(0.3)
    s = r @ _about_z(angle)
    exact = Rotation.from_matrix((r.T @ s).numpy()).magnitude()
    theta = float(so3.geodesic_distance(r, s))
    assert theta == pytest.approx(
        exact, rel=1e-9 if angle < 1 else 0, abs=0 if angle < 1 else 1e-12
    )
    # float32 matrices carry ~6e-8 rounding per entry: the angle is right to that, at both ends
    theta32 = float(so3.geodesic_distance(r.float(), s.float()))
    assert theta32 == pytest.approx(exact, abs=3e-7)
    # arccos of the trace would give 0 (or 3e-4) for 1e-5 rad in float32; we keep 1e-5
    r32 = torch.eye(3)
    s32 = _about_z(1e-5, torch.float32)
    assert float(so3.geodesic_distance(r32, s32)) == pytest.approx(1e-5, rel=1e-3)


def test_pairwise_distances_equal_the_elementwise_ones():
    a, b = so3.random_rotations(30, 5), so3.random_rotations(40, 6)
    pairwise = so3.pairwise_geodesic_distance(a, b, max_elements=100)
    torch.testing.assert_close(
        pairwise, so3.geodesic_distance(a[:, None], b[None]), atol=1e-12, rtol=0
    )


def _rotations_around(center, angles_and_axes):
    return torch.stack(
        [center @ so3.exp_map(torch.tensor(v, dtype=torch.float64)) for v in angles_and_axes]
    )


def test_single_rotation_averages():
    center = so3.random_rotations(1, 7)[0]
    # symmetric spread: every mean is the centre
    spread = [(0.3, 0, 0), (-0.3, 0, 0), (0, 0.5, 0), (0, -0.5, 0), (0, 0, 0.2), (0, 0, -0.2)]
    rotations = _rotations_around(center, spread)
    for f in (so3.karcher_mean, so3.weiszfeld_median, so3.chordal_mean, so3.quaternion_mean):
        torch.testing.assert_close(f(rotations), center, atol=1e-9, rtol=0)
    # rotations about one axis: the geodesic L2 mean is the mean angle, the L1 median the median
    angles = [0.1, 0.2, 0.25, 0.9, 1.4]
    rotations = _rotations_around(center, [(0, 0, a) for a in angles])
    karcher = so3.log_map(center.T @ so3.karcher_mean(rotations))
    assert float(karcher[2]) == pytest.approx(np.mean(angles), abs=1e-10)
    median = so3.log_map(
        center.T @ so3.weiszfeld_median(rotations, tolerance=1e-13, max_iterations=2000)
    )
    assert float(median[2]) == pytest.approx(np.median(angles), abs=1e-6)
    # the chordal L2 mean is scipy's Rotation.mean, and the quaternion L2 mean is the same
    r = so3.random_rotations(50, 8) @ torch.tensor(np.eye(3))  # any set
    w = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = Rotation.from_matrix(r.numpy()).mean(weights=w.numpy()).as_matrix()
    np.testing.assert_allclose(so3.chordal_mean(r, w).numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(so3.quaternion_mean(r, w).numpy(), expected, atol=1e-10)
    # Karcher's first-order condition: the mean of the logs at the mean vanishes (weighted)
    close = so3.random_rotations(1, 9)[0] @ so3.exp_map(
        0.4 * torch.randn(20, 3, dtype=torch.float64)
    )
    w = torch.rand(20, dtype=torch.float64)
    mean = so3.karcher_mean(close, w)
    gradient = (so3.log_map(mean.T @ close) * (w / w.sum())[:, None]).sum(0)
    assert float(gradient.norm()) < 1e-10


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_averages_are_invariant_under_left_and_right_multiplication(seed):
    g = torch.Generator().manual_seed(seed)
    rotations = so3.random_rotations(1, seed)[0] @ so3.exp_map(
        0.5 * torch.randn(12, 3, generator=g, dtype=torch.float64)
    )
    left, right = so3.random_rotations(2, seed + 1)
    for f in (so3.karcher_mean, so3.weiszfeld_median, so3.chordal_mean, so3.quaternion_mean):
        mean = f(rotations)
        torch.testing.assert_close(f(left @ rotations), left @ mean, atol=1e-8, rtol=0)
        torch.testing.assert_close(f(rotations @ right), mean @ right, atol=1e-8, rtol=0)


def _synchronisation_problem(n, noise, outliers, seed):
    g = torch.Generator().manual_seed(seed)
    truth = so3.random_rotations(n, seed)
    edges = torch.tensor([(i, j) for i in range(n) for j in range(i + 1, n)])
    relative = truth[edges[:, 0]] @ truth[edges[:, 1]].transpose(-1, -2)
    relative = relative @ so3.exp_map(
        noise * torch.randn(len(edges), 3, generator=g, dtype=torch.float64)
    )
    bad = torch.rand(len(edges), generator=g) < outliers
    relative[bad] = so3.random_rotations(int(bad.sum()), seed + 1)
    return truth, edges, relative


def _error_degrees(estimate, truth):
    # up to a global rotation G: estimate_i = truth_i G
    g = so3.chordal_mean(truth.transpose(-1, -2) @ estimate)
    return torch.rad2deg(so3.geodesic_distance(estimate, truth @ g))


def test_synchronisation_spectral_and_robust():
    truth, edges, relative = _synchronisation_problem(25, 0.02, 0.0, 10)
    error = _error_degrees(so3.synchronize(relative, edges, 25), truth)
    assert float(error.max()) < 1.0  # noise 0.02 rad per edge, 24 edges per node
    truth, edges, relative = _synchronisation_problem(25, 0.02, 0.25, 11)
    spectral = _error_degrees(so3.synchronize(relative, edges, 25), truth)
    robust = _error_degrees(so3.synchronize(relative, edges, 25, robust=True), truth)
    # 25 % random edges: the spectral method is pulled off by >5 degrees; the robust one stays
    # at the noise floor of the clean problem (~1 degree for 0.02 rad per axis per edge)
    assert float(robust.max()) < 1.5 and float(spectral.max()) > 5.0
    with pytest.raises(InvalidInputError):
        so3.synchronize(relative, edges, 5)


def test_quaternion_jacobian_equals_autograd_and_fits_a_pose():
    q = torch.tensor([0.7, -0.2, 0.4, 0.5], dtype=torch.float64)
    p = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)

    def rotate(qq):
        full = torch.cat([qq.new_zeros(1), p])
        return so3.quaternion_multiply(
            so3.quaternion_multiply(qq, full), so3.quaternion_conjugate(qq)
        )[1:]

    expected = torch.autograd.functional.jacobian(rotate, q)
    torch.testing.assert_close(so3.rotated_point_jacobian(q, p), expected)
    # fit a rotation to point pairs by Riemannian gradient descent
    truth = so3.random_rotations(1, 12)[0]
    x = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = so3.rotate_points(truth, x)
    fitted, history = so3.fit_rotation(
        lambda r: ((so3.rotate_points(r, x) - y) ** 2).sum(),
        torch.eye(3, dtype=torch.float64),
        500,
        0.01,
    )
    assert float(so3.geodesic_distance(fitted, truth)) < 1e-6
    assert history[-1] < history[0]
