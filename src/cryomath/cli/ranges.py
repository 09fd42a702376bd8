"""The range of every numeric option, checked before a command does any work.

One spelling means one quantity (tests/test_architecture.py), so a range belongs to the option
name, whichever command takes it. Every float must also be finite. ``checked_command`` wraps a
built command so that its values are checked after parsing and before its function runs.
"""

import functools
import math
from dataclasses import dataclass

from cryomath.errors import InvalidInputError


@dataclass(frozen=True)
class Range:
    """``kind`` (int or float) values in ``[low, high]``, an end excluded where ``*_open``."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def problem(self, value) -> str | None:
        """Why ``value`` is outside the range, or None."""
        if self.kind is float and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        below = value <= self.low if self.low_open else value < self.low
        above = value >= self.high if self.high_open else value > self.high
        if below or above:
            return f"must be in {self.describe()}, got {value:g}"
        return None

    def describe(self) -> str:
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        if self.kind is int:
            return f"{left}{int(self.low)}, {int(self.high)}{right}"
        return f"{left}{self.low:g}, {self.high:g}{right}"


def _f(low, high, low_open=False, high_open=False) -> Range:
    return Range(float, low, high, low_open, high_open)


def _i(low, high) -> Range:
    return Range(int, low, high)


ANY = _f(-math.inf, math.inf, True, True)

RANGES: dict[str, Range] = {
    "--alignment-bfactor": _f(0, 1e5),  # pixel^2
    "--amplitude-contrast": _f(0, 1, high_open=True),
    "--angle-limit": _f(0.01, 180),  # degrees
    "--angle-step": _f(0.01, 90),  # degrees
    "--astigmatism": _f(0, 1e5),  # Angstrom
    "--bandwidth": _f(0.01, 1e4),  # Angstrom
    "--batch-size": _i(1, 1_000_000),
    "--beta": _f(0, 1e6),  # the KL weight
    "--bfactor": _f(-2000, 2000),  # Angstrom^2
    "--box-size": _i(2, 8192),  # pixels
    "--chunk-size": _i(1, 1_000_000),
    "--class-inactivity-threshold": _f(0, 1, high_open=True),  # a share of 1/K
    "--classes": _i(1, 10_000),
    "--components": _i(1, 100),
    "--cs": _f(0, 20),  # mm
    "--defocus-max": _f(50, 2e5),  # Angstrom (below 50: micrometres given by mistake)
    "--defocus-min": _f(50, 2e5),
    "--delta": _f(0.01, 180),  # degrees
    "--dose": _f(1e-6, 1e4),  # e/A^2
    "--dose-per-frame": _f(1e-6, 1e3),  # e/A^2
    "--dqe": _f(0, 1, low_open=True),  # detective quantum efficiency at zero frequency
    "--drift-speed": _f(0, 1000),  # pixels per frame
    "--epochs": _i(1, 100_000),
    "--final-batch": _i(1, 1_000_000),
    "--final-resolution": _f(0.01, 1000),  # Angstrom
    "--frames": _i(2, 10_000),  # trajectory frames between two models
    "--grid-order": _i(0, 7),  # HEALPix
    "--grid-spacing": _f(0.01, 100),  # Angstrom
    "--healpix-order": _i(0, 4),  # a global search
    "--hps-keep": _i(1, 100_000),  # hypotheses per image and level
    "--ini-high": _f(0.01, 1000),  # Angstrom
    "--initial-batch": _i(1, 1_000_000),
    "--initial-resolution": _f(0.01, 1000),  # Angstrom
    "--iterations": _i(1, 10_000),
    "--learning-rate": _f(1e-8, 1),
    "--leave-out-groups": _i(1, 1000),
    "--local-from-order": _i(0, 8),
    "--local-motion": _f(0, 1000),  # pixels
    "--mass-query": _f(1e-3, 1e7),  # kDa
    "--mass-ref": _f(1e-3, 1e7),
    "--max-iterations": _i(1, 1000),
    "--max-order": _i(0, 7),
    "--maxsig": _i(1, 100_000),
    "--minibatch": _i(1, 1_000_000),
    "--momentum": _f(0, 1, high_open=True),
    "--movie-frames": _i(2, 10_000),
    "--movie-size": _i(8, 65_536),  # pixels
    "--n": _i(1, 1_000_000_000),
    "--neural-learning-rate": _f(1e-8, 1),
    "--neural-replay": _i(1, 1000),  # minibatches
    "--neural-steps": _i(1, 1000),  # Adam passes per minibatch
    "--offset-range": _f(0, 1000),  # pixels
    "--offset-step": _f(0.01, 100),  # pixels
    "--order": _i(0, 7),
    "--pad": _f(1, 4),
    "--particle-diameter": _f(1, 1e5),  # Angstrom
    "--pixel-size": _f(0.01, 100),  # Angstrom
    "--posterior-samples": _i(0, 10_000),  # even: checked by heterogeneity.neural
    "--pre-exposure": _f(0, 1e4),  # e/A^2
    "--refine-iterations": _i(0, 1000),  # refine iterations after ab initio
    "--s-acc": _f(1e-6, 1e4),  # Angstrom per e/A^2 (Bayesian polishing)
    "--s-div": _f(1e-3, 1e7),  # Angstrom
    "--s-vel": _f(1e-6, 1e4),  # Angstrom per e/A^2
    "--preferred-fraction": _f(0, 1),
    "--preferred-kappa": _f(0, 1e6),
    "--psi-step": _f(0.1, 180),  # degrees
    "--resolution": _f(0.01, 1000),  # Angstrom
    "--seed": _i(0, 2**63 - 1),
    "--shard-size": _i(1, 1_000_000_000),
    "--shift-sigma": _f(0, 1e4),  # Angstrom
    "--snr": _f(1e-6, 1e6),  # below, the noise overflows float32 images
    "--states": _i(1, 10_000),
    "--tau2-fudge": _f(0.01, 1000, low_open=True),
    "--threshold-query": ANY,
    "--threshold-ref": ANY,
    "--top": _i(1, 10_000),
    "--translation-radius": _f(0, 1e4),  # Angstrom
    "--voltage": _f(10, 3000),  # kV
    "--white-noise-sd": _f(0, 1e6, low_open=True),  # the images' units
    "--width": _i(1, 4096),  # hidden units
    "--zdim": _i(1, 64),
}


def _check(name: str, value, declared: Range | None) -> None:
    """Numbers against their declared range; undeclared floats must still be finite."""
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        bounds = declared or (ANY if isinstance(v, float) else None)
        problem = bounds.problem(v) if bounds else None
        if problem:
            raise InvalidInputError(f"{name} {problem}")


def checked_command(command):
    """Wrap the callback of every leaf command of the click ``command`` tree with the checks."""
    for child in getattr(command, "commands", {}).values():
        checked_command(child)
    if command.callback is None or hasattr(command, "commands"):
        return command
    names = {p.name: (p.opts[0] if p.opts else p.name) for p in command.params}
    inner = command.callback

    @functools.wraps(inner)
    def callback(**values):
        for key, value in values.items():
            name = names.get(key, key)
            _check(name, value, RANGES.get(name))
        return inner(**values)

    command.callback = callback
    return command
