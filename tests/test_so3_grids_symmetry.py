"""Grids (HEALPix against healpy, counts, covering radius against the nominal step), point
groups against RELION's own operators and scipy, and symmetry expansion against
``relion_particle_symmetry_expand``."""

import json
import math
from pathlib import Path

import healpy
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomath import so3
from cryomath.errors import InvalidInputError
from cryomath.io import read_relion_star
from cryomath.so3 import grids

REFERENCE_HERE = Path(__file__).parent / "reference"
RELION_OPS = json.loads((REFERENCE_HERE / "relion_symmetry_ops.json").read_text())["groups"]


@pytest.mark.parametrize("nest", [True, False])
@pytest.mark.parametrize("order", [0, 1, 2, 3, 5])
def test_healpix_pixel_centres_equal_healpy(order, nest):
    nside = 2**order
    theta, phi = grids.healpix_pixel_centres(nside, nest=nest)
    theta_ref, phi_ref = healpy.pix2ang(nside, np.arange(12 * nside**2), nest=nest)
    np.testing.assert_allclose(theta.numpy(), theta_ref, atol=1e-14)
    np.testing.assert_allclose(phi.numpy(), phi_ref, atol=1e-14)
    with pytest.raises(InvalidInputError):
        grids.healpix_pixel_centres(3)


def test_healpix_base_pixels_are_the_published_centres():
    # Gorski et al. 2005: the 12 base pixels sit at z = 2/3 (phi = pi/4 + k pi/2), z = 0
    # (phi = k pi/2) and z = -2/3
    theta, phi = grids.healpix_pixel_centres(1, nest=False)
    np.testing.assert_allclose(
        np.cos(theta.numpy()), [2 / 3] * 4 + [0] * 4 + [-2 / 3] * 4, atol=1e-15
    )
    np.testing.assert_allclose(phi.numpy()[:4], np.pi / 4 + np.arange(4) * np.pi / 2)
    np.testing.assert_allclose(phi.numpy()[4:8], np.arange(4) * np.pi / 2, atol=1e-15)


def _quaternions(method, order):
    if method == "healpix":
        return so3.quaternion_from_matrix(grids.healpix_poses(order))
    if method == "hopf":
        return grids.hopf_grid(order)
    return grids.super_fibonacci(72 * 8**order)


@pytest.mark.parametrize("method", ["healpix", "hopf", "super-fibonacci"])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_grid_counts_and_covering_radius_against_the_nominal_step(method, order):
    q = _quaternions(method, order)
    assert q.shape == (72 * 8**order, 4)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=q.dtype))
    nominal = math.radians(60 / 2**order)
    covering = grids.covering_radius(q, n_probes=20_000)
    # conventions-facts.md: about 0.85 x the nominal step for HEALPix/Hopf/Super-Fibonacci
    assert 0.75 * nominal < covering < 1.0 * nominal
    random = so3.random_quaternions(len(q), 1)
    assert grids.covering_radius(random, n_probes=20_000) > (1.15 if order == 0 else 1.4) * covering
    assert grids.minimum_separation(q) > 0.2 * nominal


def test_relion_healpix_grid_layout():
    angles = grids.healpix_grid(1)
    assert angles.shape == (576, 3)
    np.testing.assert_allclose(angles[:12, 2].numpy(), np.arange(12) * 30.0)
    theta, phi = healpy.pix2ang(2, np.arange(48), nest=True)
    np.testing.assert_allclose(angles[::12, 1].numpy(), np.degrees(theta), atol=1e-12)
    np.testing.assert_allclose(angles[::12, 0].numpy(), np.degrees(phi), atol=1e-12)


@pytest.mark.parametrize("method", ["P", "S"])
def test_even_angles_cover_the_sphere_and_terminate_when_the_step_divides_90(method):
    for delta in (90.0, 45.0, 30.0, 15.0, 10.0):
        directions = grids.even_angles(delta, method)
        area_per_point = 4 * math.pi / len(directions)
        assert 0.5 < area_per_point / math.radians(delta) ** 2 < 1.5
    d = grids.even_angles(15.0, method)
    vectors = _unit(d)
    probes = torch.randn(20000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    probes /= probes.norm(dim=-1, keepdim=True)
    covering = torch.rad2deg(torch.acos((probes @ vectors.T).amax(-1).clamp(max=1))).max()
    assert float(covering) < 15.0
    with pytest.raises(InvalidInputError):
        grids.even_angles(15.0, "Q")


def _unit(rot_tilt):
    rot, tilt = torch.deg2rad(rot_tilt).unbind(-1)
    return torch.stack([tilt.sin() * rot.cos(), tilt.sin() * rot.sin(), tilt.cos()], -1)


def test_even_angles_restricted_to_asymmetric_units():
    c4 = grids.even_angles(10.0, "P", "C4")
    assert bool(((c4[:, 0] >= -1e-9) & (c4[:, 0] <= 90 + 1e-9)).all())
    d2 = grids.even_angles(10.0, "P", "D2")
    assert bool((d2[:, 1] <= 90 + 1e-6).all())
    full = len(grids.even_angles(10.0, "P"))
    assert len(c4) == pytest.approx(full / 4, rel=0.25)


@pytest.mark.parametrize("group", ["C5", "D3", "T", "O", "I1", "I3"])
def test_asymmetric_unit_holds_exactly_one_of_each_orbit(group):
    g = so3.point_group(group)
    d = torch.randn(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    d /= d.norm(dim=-1, keepdim=True)
    mates = torch.einsum("gij,nj->gni", g, d)  # every symmetry mate of every direction
    inside = so3.in_asymmetric_unit(mates, g)
    assert bool((inside.sum(0) == 1).all())


def test_local_grid():
    center = so3.random_rotations(1, 3)[0]
    poses = grids.local_grid(center, radius_degrees=5.0, step_degrees=1.0)
    distance = torch.rad2deg(so3.geodesic_distance(poses, center))
    assert float(distance.max()) <= 5.0 + 1e-9
    assert len(poses) == 515  # lattice points of Z^3 in a ball of radius 5
    assert float(distance.min()) == 0.0


@pytest.mark.parametrize("name", sorted(RELION_OPS))
def test_point_groups_equal_relions_operators(name):
    ours = so3.point_group(name).numpy()
    relion = np.array(RELION_OPS[name])
    assert len(ours) == len(relion)
    difference = np.abs(ours[:, None] - relion[None]).max(axis=(2, 3))
    assert difference.min(axis=1).max() < 1e-5  # RELION prints 5-8 significant digits
    assert difference.min(axis=0).max() < 1e-5


@pytest.mark.parametrize("name", ["C3", "D4", "T", "O", "I"])
def test_scipy_setting_equals_scipy_create_group(name):
    ours = so3.point_group(name, setting="scipy").numpy()
    expected = Rotation.create_group(name).as_matrix()
    difference = np.abs(ours[:, None] - expected[None]).max(axis=(2, 3))
    assert difference.min(axis=1).max() < 1e-12 and len(ours) == len(expected)


def test_package_settings_follow_the_documented_relations():
    def same(a, b):
        d = (a[:, None] - b[None]).abs().amax((-1, -2))
        return bool((d.amin(1) < 1e-12).all()) and len(a) == len(b)

    assert same(so3.point_group("I1", "scipy"), so3.point_group("I1"))
    assert same(so3.point_group("icos", "eman"), so3.point_group("I4"))
    rz90 = so3.matrix_about_axis(torch.tensor(math.pi / 2, dtype=torch.float64), "z")
    assert same(so3.point_group("I2"), rz90 @ so3.point_group("I1") @ rz90.T)
    cs_d2 = so3.point_group("D2", "cryosparc")
    y_twofold = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    assert float((cs_d2 - y_twofold).abs().amax((-1, -2)).min()) < 1e-12
    with pytest.raises(InvalidInputError):
        so3.point_group("X9")
    with pytest.raises(InvalidInputError):
        so3.point_group("C0")


@pytest.mark.parametrize("group", ["D2", "I1"])
def test_symmetry_expansion_equals_relion_particle_symmetry_expand(group):
    source = read_relion_star(REFERENCE_HERE / "relion_expand_input.star")
    expanded = read_relion_star(REFERENCE_HERE / f"relion_expand_{group}.star")
    ours = so3.symmetry_expand(torch.tensor(source.rotations), so3.point_group(group))
    relion = torch.tensor(expanded.rotations).reshape(source.n, -1, 3, 3)
    assert ours.shape == relion.shape
    for i in range(source.n):  # the same set of poses for every particle
        d = (ours[i][:, None] - relion[i][None]).abs().amax((-1, -2))
        assert float(d.amin(1).max()) < 1e-5 and float(d.amin(0).max()) < 1e-5


def test_symmetric_distance_and_closest_pose():
    group = so3.point_group("D7")
    pose = so3.random_rotations(1, 4)[0]
    nudge = so3.exp_map(torch.tensor([0.0, 0.0, 0.01], dtype=torch.float64))
    mate = pose @ group[5] @ nudge
    assert float(so3.geodesic_distance(pose, mate)) > 0.5
    assert float(so3.symmetric_geodesic_distance(pose, mate, group)) == pytest.approx(
        0.01, abs=1e-12
    )
    closest = so3.closest_symmetric_pose(mate, pose, group)
    assert float(so3.geodesic_distance(closest, pose)) == pytest.approx(0.01, abs=1e-12)


def test_a_symmetry_is_a_name_or_its_operators_everywhere():
    from cryomath.errors import InvalidInputError
    from cryomath.so3 import as_point_group, point_group

    d2 = point_group("D2")
    assert torch.equal(as_point_group("D2"), d2) and torch.equal(as_point_group(d2), d2)
    assert torch.equal(as_point_group(None), torch.eye(3, dtype=torch.float64)[None])
    with pytest.raises(InvalidInputError):
        as_point_group(torch.ones(2, 3, 3))  # not rotations
