"""The pose Fisher information (``imaging.pose_fisher_information``) against its closed form for
a Gaussian blob: white noise of variance ``v`` per pixel and a projected blob of peak ``a`` and
width ``s`` give ``pi a^2 / (2 v)`` per pixel of shift, whatever ``s``; a blob at distance
``d`` from the rotation axis moves ``d`` pixels per radian, so ``d^2`` times that for the
rotation about the viewing direction and none for the two that move it along the beam.

The volume is prepared with cubic interpolation: trilinear interpolation in a 2x padded
spectrum makes content far from the centre turn too slowly under a rotation (measured here:
``d = 6`` of a 32 box gives 0.89 of ``d^2``, ``d = 10`` 0.72; cubic 0.998 and 0.987)."""

import math

import pytest
import torch

from cryomath.imaging import NoiseSpectrum, ParticleBatch, predict_images
from cryomath.imaging.fisher import pose_fisher_information, rotation_error_bound_degrees
from cryomath.projection import prepare_volume


def test_fisher_information_of_a_gaussian_blob_is_its_closed_form():
    n, s, d, v = 32, 1.5, 6.0, 0.7
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) - n // 2] * 3, indexing="ij")
    volume = torch.exp(-((x - d) ** 2 + y**2 + z**2) / (2 * s**2))
    spectrum = prepare_volume(volume, 2.0, interpolation="cubic")
    batch = ParticleBatch.from_tensors(torch.zeros(1, n, n, dtype=torch.float64),
                                       torch.eye(3, dtype=torch.float64)[None], 1.0)  # fmt: skip
    peak = float(predict_images(spectrum, batch).max())
    noise = NoiseSpectrum((0,), torch.full((1, n), n * n * v / 2, dtype=torch.float64))
    fisher = pose_fisher_information(spectrum, batch, noise)[0]
    per_pixel = math.pi * peak**2 / (2 * v)
    assert float(fisher[3, 3]) == pytest.approx(per_pixel, rel=0.01)
    assert float(fisher[4, 4]) == pytest.approx(per_pixel, rel=0.01)
    assert float(fisher[2, 2]) == pytest.approx(d**2 * per_pixel, rel=0.01)
    assert abs(float(fisher[2, 4])) == pytest.approx(d * per_pixel, rel=0.01)
    assert float(fisher[0, 0]) < 1e-3 * per_pixel and float(fisher[1, 1]) < 1e-3 * per_pixel
    # the bound of a full-rank information: the rotation block of its inverse
    full = fisher + torch.diag(torch.tensor([1.0, 1.0, 0, 0, 0], dtype=torch.float64)) * per_pixel
    bound = rotation_error_bound_degrees(full[None])
    expected = torch.linalg.inv(full)[:3, :3].trace().sqrt()
    assert float(bound) == pytest.approx(math.degrees(float(expected)), rel=1e-9)
