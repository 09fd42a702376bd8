"""Random option values, inside each option's declared range and outside it, given to every
command: the command exits 0 with outputs that read back, or exits non-zero with one line on
stderr, no traceback and no new file. Commands that would run long are interrupted after a few
seconds, as a user's Ctrl-C would, and must then leave nothing either."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryomath.cli.ranges import RANGES, Range
from tests.edges import assert_one_line_failure, commands, files, invocations, options, outside, run

PAIRS = [(c, o) for c in commands() for o in options(c) if o in RANGES]


def _values(declared: Range):
    """``(value, inside)``: anywhere in the range (ends included when they are), or outside."""
    if declared.kind is int:
        inside = st.integers(int(declared.low), int(declared.high))
    else:
        inside = st.floats(
            max(declared.low, -1e12), min(declared.high, 1e12), allow_nan=False,
            exclude_min=declared.low_open, exclude_max=declared.high_open,
        )  # fmt: skip
    beyond = list(outside(declared))
    if math.isfinite(declared.high):
        beyond.append(declared.kind(declared.high * 10 + 10))
    if math.isfinite(declared.low):
        beyond.append(declared.kind(declared.low - abs(declared.low) * 10 - 10))
    return st.one_of(
        inside.map(lambda v: (v, True)), st.sampled_from(beyond).map(lambda v: (v, False))
    )


def _reads_back(path):
    from cryomath.io import read_mrc, read_star

    if path.suffix in (".mrc", ".mrcs"):
        read_mrc(path)
    elif path.suffix == ".star":
        read_star(path)
    elif path.suffix == ".json":
        json.loads(path.read_text(), parse_constant=lambda t: pytest.fail(f"{t} in {path}"))


@settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(data=st.data())
def test_random_values_succeed_or_fail_cleanly(tiny, tmp_path_factory, data):
    name, option = data.draw(st.sampled_from(PAIRS), label="option")
    value, inside = data.draw(_values(RANGES[option]), label="value")
    out = tmp_path_factory.mktemp("property")
    outcome = run([*invocations(tiny, out)[name], option, str(value)], seconds=5.0)
    if outcome.code == 0:
        assert inside, (name, option, value)
        for path in out.rglob("*"):
            assert not path.name.startswith("."), path  # no temporary left behind
            if path.is_file():
                _reads_back(path)
        return
    line = assert_one_line_failure(outcome)
    assert "PosixPath" not in line
    if not inside:
        assert outcome.code == 1 and "must be" in line, (name, option, value, line)
    left = files(out)
    if name == "simulate" and outcome.code == 130:  # resumable: its record and whole shards
        shards = {f"sim/{p.name}" for p in out.glob("sim/particles_*.mrcs")}
        left -= {"sim", "sim/simulation.json", *shards}
    if outcome.code == 130:  # an iterative command keeps its last checkpoint for --continue
        kept = {p.relative_to(out).as_posix() for p in out.glob("*/checkpoint.pt")}
        left -= kept | {k.split("/")[0] for k in kept}
    assert left == set(), (name, option, value, line)
