"""The references' mask in ``refine`` (``inference.refine.reference_mask``): by default the
automatic mask of the last joined map inside the particle's sphere (cryoSPARC's dynamic mask),
which holds the molecule and less than half the sphere's volume around a small one; the
sphere alone with ``auto_mask`` off (RELION's); the user's solvent mask as given (RELION's
``--solvent_mask``)."""

import math

import torch

from cryomath.fourier.masks import spherical_mask
from cryomath.inference.refine import RefineSettings, RefineState, reference_mask
from cryomath.resolution import automatic_mask

N, VOXEL, RADIUS = 40, 2.0, 17.0


def _state(full):
    maps = torch.zeros(2, N, N, N, dtype=torch.float64)
    return RefineState(1, maps, VOXEL, None, None, None, None, 1.0, full=full)


def test_the_references_mask_is_the_sphere_the_users_or_the_molecules():
    molecule = spherical_mask((N, N, N), 5.0, 2.0, dtype=torch.float64)  # 10 A: a small one
    sphere = spherical_mask((N, N, N), RADIUS, 3.0, dtype=torch.float64)
    state = _state(molecule)
    assert torch.equal(reference_mask(state, RefineSettings(auto_mask=False), RADIUS), sphere)
    given = spherical_mask((N, N, N), 9.0, 1.0, dtype=torch.float64)
    assert torch.equal(reference_mask(state, RefineSettings(solvent_mask=given), RADIUS), given)
    auto = reference_mask(state, RefineSettings(), RADIUS)  # the default
    assert torch.equal(auto, automatic_mask(molecule, VOXEL) * sphere)
    assert float(auto[molecule > 0].min()) == 1.0  # all of the molecule
    assert float(auto.sum()) < 0.5 * float(sphere.sum())
    assert float(auto.sum()) > 4 / 3 * math.pi * 5.0**3
    start = _state(None)  # before the first joined map: the start's (the halves' mean)
    start.maps = torch.stack([molecule, molecule])
    assert torch.equal(reference_mask(start, RefineSettings(auto_mask=True), RADIUS), auto)
