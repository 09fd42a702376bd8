"""Distributions: densities integrate to 1, sample moments equal analytic values (or an
independent Monte Carlo over Haar-uniform rotations), maximum-likelihood fits recover the
parameters."""

import math

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.errors import InvalidInputError
from cryomath.so3.distributions import (
    Bingham,
    IsotropicGaussian,
    MatrixFisher,
    VonMisesFisher,
    haar_angle_log_prob,
)
from cryomath.so3.distributions.matrix_fisher import bingham_matrix

F64 = torch.float64


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def test_haar_angle_density_integrates_to_one_and_matches_random_rotations():
    omega = torch.linspace(0, math.pi, 100001, dtype=F64)
    assert float(torch.trapezoid(haar_angle_log_prob(omega).exp(), omega)) == pytest.approx(
        1, abs=1e-9
    )
    angles = so3.log_map(so3.random_rotations(200_000, 0)).norm(dim=-1)
    # E[omega] for the Haar angle density (1 - cos w) / pi is pi/2 + 2/pi
    assert float(angles.mean()) == pytest.approx(math.pi / 2 + 2 / math.pi, abs=5e-3)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0])
def test_isotropic_gaussian_integrates_to_one_and_has_the_heat_kernel_moment(sigma):
    dist = IsotropicGaussian(so3.random_rotations(1, 1)[0], sigma)
    omega = torch.linspace(0, math.pi, 200001, dtype=F64)
    density = dist.angle_log_prob(omega).exp()
    assert float(torch.trapezoid(density, omega)) == pytest.approx(1, abs=1e-6)
    samples = dist.sample(100_000, _generator(2))
    angle = so3.geodesic_distance(samples, dist.mean)
    # E[chi_1] = E[1 + 2 cos w] = 3 exp(-sigma^2) (orthogonality of characters)
    expected = 3 * math.exp(-(sigma**2))
    assert float((1 + 2 * angle.cos()).mean()) == pytest.approx(expected, abs=0.01)
    # log_prob wrt Haar of the samples equals the angle density / Haar angle density
    lp = dist.log_prob(samples[:10])
    om = so3.geodesic_distance(samples[:10], dist.mean)
    torch.testing.assert_close(lp, dist.angle_log_prob(om) - haar_angle_log_prob(om))
    with pytest.raises(InvalidInputError):
        IsotropicGaussian(dist.mean, 0.001)


def test_isotropic_gaussian_small_sigma_is_a_gaussian_in_the_tangent_space():
    dist = IsotropicGaussian(torch.eye(3, dtype=F64), 0.05)
    v = so3.log_map(dist.sample(100_000, _generator(3)))
    np.testing.assert_allclose(v.var(0).numpy(), [0.05**2] * 3, rtol=0.03)


def test_matrix_fisher_normaliser_samples_and_fit():
    f = torch.tensor([[2.0, 0.5, -0.3], [0.1, 4.0, 0.7], [-1.0, 0.2, 1.0]], dtype=F64)
    dist = MatrixFisher(f)
    haar = so3.random_rotations(400_000, 4)
    weights = (f * haar).sum((-1, -2)).exp()
    # independent oracle: c(F) = E_Haar[exp(tr(F^T R))]
    assert float(dist.log_normalizer()) == pytest.approx(float(weights.mean().log()), abs=0.01)
    samples = dist.sample(100_000, _generator(5))
    expected_mean = (haar * (weights / weights.sum())[:, None, None]).sum(0)
    np.testing.assert_allclose(samples.mean(0).numpy(), expected_mean.numpy(), atol=0.01)
    fitted = MatrixFisher.fit(samples)
    np.testing.assert_allclose(fitted.f.numpy(), f.numpy(), atol=0.1)
    # q^T B q = tr(F^T R(q))
    q = so3.random_quaternions(100, 6)
    torch.testing.assert_close(
        ((q @ bingham_matrix(f)) * q).sum(-1), (f * so3.matrix_from_quaternion(q)).sum((-1, -2))
    )
    # the log density is differentiable in F
    g = f.clone().requires_grad_(True)
    MatrixFisher(g).log_prob(samples[:5]).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_bingham_second_moment_equals_importance_weighted_haar():
    rng = np.random.default_rng(7)
    m = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    a = torch.tensor(m @ np.diag([0.0, -1.0, -4.0, -10.0]) @ m.T)
    dist = Bingham(a)
    samples = dist.sample(100_000, _generator(8))
    torch.testing.assert_close(samples.norm(dim=-1), torch.ones(len(samples), dtype=F64))
    uniform = so3.random_quaternions(400_000, 9)
    w = dist.unnormalized_log_prob(uniform).exp()
    expected = torch.einsum("n,ni,nj->ij", w / w.sum(), uniform, uniform)
    np.testing.assert_allclose(
        torch.einsum("ni,nj->ij", samples, samples).numpy() / len(samples),
        expected.numpy(),
        atol=0.01,
    )
    with pytest.raises(InvalidInputError):
        Bingham(torch.zeros(3, 3))


def test_von_mises_fisher_integrates_to_one_and_has_the_analytic_mean():
    mu = torch.tensor([1.0, 2.0, 2.0], dtype=F64)
    dist = VonMisesFisher(mu, 5.0)
    x = dist.sample(200_000, _generator(10))
    mean_cos = float((x @ dist.mu).mean())
    assert mean_cos == pytest.approx(1 / math.tanh(5.0) - 1 / 5.0, abs=3e-3)
    uniform = torch.randn(400_000, 3, dtype=F64, generator=_generator(11))
    uniform /= uniform.norm(dim=-1, keepdim=True)
    integral = 4 * math.pi * float(dist.log_prob(uniform).exp().mean())
    assert integral == pytest.approx(1.0, abs=0.01)
