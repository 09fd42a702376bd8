"""Helpers of the edge-case tests: one valid invocation of every command on the tiny inputs
(tests/conftest.py), and a runner that captures what a user would see."""

import contextlib
import io
import math
import signal
from dataclasses import dataclass
from pathlib import Path

from cryomath.cli import command, main


def invocations(tiny: dict, out: Path) -> dict[str, list[str]]:
    """A valid call of every command, its outputs under ``out``."""
    star, h1, h2 = str(tiny["star"]), str(tiny["half1"]), str(tiny["half2"])
    return {
        "info": ["info", star],
        "convert": ["convert", star, str(out / "c.star")],
        "simulate": ["simulate", h1, "--n", "2", "--out", str(out / "sim")],
        "project": ["project", h1, "--poses", star, "--out", str(out / "p.mrcs")],
        "demo": ["demo", "--n", "40", "--out", str(out / "demo")],
        "reconstruct": ["reconstruct", star, "--out", str(out / "rec")],
        "fsc": ["fsc", h1, h2, "--plot", str(out / "fsc.png")],
        "postprocess": ["postprocess", h1, h2, "--out", str(out / "pp")],
        "align-maps": ["align-maps", h1, h2, "--out", str(out / "fit")],
        "search-maps": ["search-maps", h1, str(tiny["maps"]), "--out", str(out / "search")],
        "class2d": [
            "class2d",
            star,
            "--classes",
            "2",
            "--iterations",
            "1",
            "--out",
            str(out / "c2d"),
        ],
        "class3d": [
            *("class3d", star, "--reference", h1, "--classes", "2", "--iterations", "1"),
            *("--healpix-order", "0", "--out", str(out / "c3d")),
        ],
        "select": ["select", str(tiny["classified"]), "--class", "1", "--out", str(out / "s.star")],
        "refine": [
            *("refine", star, "--reference", h1, "--max-iterations", "1", "--healpix-order"),
            *("0", "--out", str(out / "ref")),
        ],
        "abinitio": [
            *("abinitio", star, "--iterations", "1", "--initial-batch", "4", "--final-batch"),
            *("8", "--healpix-order", "0", "--initial-resolution", "16", "--out"),
            str(out / "ab"),
        ],
        "denoise": ["denoise", star, "--out", str(out / "dn")],
        "variability": [
            *("variability", star, "--components", "1", "--iterations", "1"),
            *("--out", str(out / "var")),
        ],
        "train-vae": [
            "train-vae",
            star,
            "--epochs",
            "1",
            "--width",
            "8",
            "--out",
            str(out / "vae"),
        ],
        "analyze": ["analyze", str(out / "vae"), "--states", "2"],  # after train-vae
        "motioncorr": ["motioncorr", str(tiny["stack"]), "--out", str(out / "mc")],
        "polish": [
            *("polish", str(tiny["movie_particles"]), "--movies", str(tiny["movies"])),
            *("--reference", h1, "--dose-per-frame", "2", "--out", str(out / "pol")),
        ],
        "rotations convert": [
            *("rotations", "convert", "--from", "relion", "--to", "eman", "10", "20", "30"),
            *("--out", str(out / "r.txt")),
        ],
        "rotations grid": ["rotations", "grid", "--order", "0", "--out", str(out / "g.star")],
        "rotations average": ["rotations", "average", star],
        "rotations distance": ["rotations", "distance", "10,20,30", "40,50,60"],
        "rotations expand": ["rotations", "expand", star, str(out / "e.star")],
    }


def commands() -> dict[str, object]:
    """Every leaf command of the CLI by its full name (``"rotations grid"``)."""
    found = {}

    def walk(node, name):
        for sub, child in getattr(node, "commands", {}).items():
            walk(child, f"{name} {sub}".strip())
        if not hasattr(node, "commands"):
            found[name] = node

    walk(command(), "")
    return found


def options(name: str) -> list[str]:
    """The option names of one command."""
    return [o for p in commands()[name].params if p.param_type_name == "option" for o in p.opts]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def run(argv: list[str], seconds: float | None = None) -> Outcome:
    """``cryomath argv`` in this process; with ``seconds``, interrupted after that long as a
    user's Ctrl-C would (the SIGINT handler runs: the command's own while it runs). Not inside
    an import: a user's process ends there, but this one goes on, and a half-imported module
    would fail the next calls."""
    out, err = io.StringIO(), io.StringIO()

    def interrupt(signum, frame):
        caller = frame
        while caller is not None:
            if caller.f_code.co_filename.startswith("<frozen importlib"):
                signal.setitimer(signal.ITIMER_REAL, 0.01)
                return
            caller = caller.f_back
        ctrl_c(frame)

    previous = signal.signal(signal.SIGALRM, interrupt) if seconds else None
    try:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return Outcome(code, out.getvalue(), err.getvalue())


def ctrl_c(frame=None) -> None:
    """What a Ctrl-C does here and now: the SIGINT handler runs (it raises KeyboardInterrupt)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    raise KeyboardInterrupt  # SIGINT ignored or left to the system: as the default would


def files(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` (hidden temporaries included), relative."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_one_line_failure(outcome: Outcome) -> str:
    """A failure as promised: non-zero status, one line on stderr, no traceback."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.code != 0
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(("cryomath: error: ", "cryomath: interrupted")), lines[0]
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr
    return lines[0]


def outside(declared) -> list[float]:
    """Values just outside a declared range, and the non-finite ones."""
    values = []
    step = 1 if declared.kind is int else max(1e-6, 1e-6 * abs(declared.low))
    if math.isfinite(declared.low):
        values.append(declared.low - step if not declared.low_open else declared.low)
    if math.isfinite(declared.high):
        values.append(declared.high + step if not declared.high_open else declared.high)
    if declared.kind is float:
        values += [math.nan, math.inf]
    return [declared.kind(v) if declared.kind is int else v for v in values]
