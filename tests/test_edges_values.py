"""Values are checked at the edge, before any work or file: every numeric option against its
declared range (cryomath.cli.ranges), rotations entering the public API, simulation settings,
and requests that would need more memory than the machine has."""

import math

import pytest
import torch

from cryomath.cli.ranges import RANGES
from cryomath.errors import InvalidInputError, NotARotationError
from tests.edges import (
    assert_one_line_failure,
    commands,
    files,
    invocations,
    options,
    outside,
    run,
)

PAIRS = [(c, o) for c in commands() for o in options(c) if o in RANGES]


def test_every_command_has_an_invocation_and_every_number_a_range(tiny, tmp_path):
    assert set(invocations(tiny, tmp_path)) == set(commands())
    numeric = {o for c in commands() for p in commands()[c].params if p.param_type_name == "option"
               and p.type_descriptor.annotation in (int, float, int | None, float | None)
               for o in p.opts}  # fmt: skip
    assert numeric == {o for c, o in PAIRS}, numeric ^ {o for c, o in PAIRS}


@pytest.mark.parametrize(("name", "option"), PAIRS, ids=[f"{c}:{o}" for c, o in PAIRS])
def test_values_outside_the_range_are_refused_before_any_file(tiny, tmp_path, name, option):
    base = invocations(tiny, tmp_path)[name]
    for value in outside(RANGES[option]):
        outcome = run([*base, option, str(value)])
        line = assert_one_line_failure(outcome)
        assert outcome.code == 1 and option in line and "must be" in line, line
        assert files(tmp_path) == set()


def test_negative_box_size_no_longer_flips_shifts(tiny, tmp_path):
    pose = tiny["star"].parent.parent.parent / "none.pkl"  # never read: the range comes first
    outcome = run(["convert", str(pose), str(tmp_path / "o.star"), "--box-size", "-30"])
    assert "--box-size must be in [2, 8192], got -30" in assert_one_line_failure(outcome)


@pytest.mark.parametrize(
    "matrix",
    [torch.full((3, 3), math.nan), torch.diag(torch.tensor([1.0, 1.0, -1.0])), 2 * torch.eye(3)],
    ids=["nan", "improper", "not-orthogonal"],
)
def test_rotations_entering_the_api_are_checked(matrix):
    from cryomath.projection import project_fourier, project_real_space
    from cryomath.so3 import chordal_distance, geodesic_distance, pairwise_geodesic_distance

    volume = torch.randn(8, 8, 8, dtype=torch.float64)
    calls = [
        lambda: project_fourier(volume, matrix[None].double()),
        lambda: project_real_space(volume, matrix[None].double()),
        lambda: geodesic_distance(matrix, torch.eye(3)),
        lambda: chordal_distance(matrix, torch.eye(3)),
        lambda: pairwise_geodesic_distance(matrix[None], torch.eye(3)[None]),
    ]
    for call in calls:
        with pytest.raises((InvalidInputError, NotARotationError)):
            call()


def test_zero_quaternions_and_ragged_rotation_files(tmp_path):
    zero = run(["rotations", "convert", "--from", "quaternion", "--to", "relion", "0", "0", "0",
                "0"])  # fmt: skip
    assert "quaternion 1 is zero" in assert_one_line_failure(zero)
    ragged = tmp_path / "angles.txt"
    ragged.write_text("30 60 90\n10 20\n")
    outcome = run(["rotations", "convert", "--file", str(ragged), "--to", "eman"])
    assert "angles.txt:2: 2 numbers" in assert_one_line_failure(outcome)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pixel_size_angstrom", math.nan), ("pixel_size_angstrom", 0.0), ("snr", -1.0),
     ("amplitude_contrast", 1.5), ("shard_size", 0), ("voltage_kv", math.inf),
     ("grid_order", 9), ("preferred_direction", (0.0, 0.0, 0.0))],
)  # fmt: skip
def test_simulation_settings_are_checked_before_anything_is_written(tmp_path, field, value):
    from cryomath.pipelines import simulate_dataset
    from cryomath.simulate import SimulationSettings

    settings = SimulationSettings(4, 2.0)
    setattr(settings, field, value)
    with pytest.raises(InvalidInputError, match=field):
        simulate_dataset(torch.randn(8, 8, 8, dtype=torch.float64), tmp_path / "s", settings)
    assert files(tmp_path) == set()


def test_requests_beyond_the_memory_are_refused_with_the_figure(tiny, tmp_path):
    from cryomath.devices import available_memory_bytes

    grid = run(["rotations", "grid", "--order", "7"])  # 151 million poses
    assert "needs about" in assert_one_line_failure(grid) and "is available" in grid.stderr
    h1 = str(tiny["half1"])
    fit = run(["align-maps", h1, h1, "--grid-spacing", "0.01", "--out", str(tmp_path / "f")])
    assert "needs about" in assert_one_line_failure(fit)
    steps = run(["align-maps", h1, h1, "--angle-step", "0.01", "--out", str(tmp_path / "f")])
    assert "rotations) needs about" in assert_one_line_failure(steps)
    assert files(tmp_path) == set()
    assert available_memory_bytes() > 2**20
