"""Failures of the environment are one line, and leave nothing: folders that cannot be created,
targets that are folders, a file-size limit (as a full disk), and strict JSON; outputs take the
user's umask."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cryomath.io.results import plain
from tests.edges import assert_one_line_failure, files, invocations, run

FOLDER_OUTPUTS = ["simulate", "reconstruct", "postprocess", "align-maps", "search-maps", "demo"]
FILE_OUTPUTS = {
    "convert": 2, "project": 5, "rotations grid": 5, "rotations expand": 3, "fsc": 4,
    "rotations convert": 10,
}  # fmt: skip  # where the output path sits in the invocation


def _with_out(argv: list[str], out: Path) -> list[str]:
    i = argv.index("--out") + 1
    return [*argv[:i], str(out), *argv[i + 1 :]]


@pytest.mark.parametrize("name", FOLDER_OUTPUTS)
def test_an_output_folder_with_a_file_in_the_way(tiny, tmp_path, name):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should go")
    argv = _with_out(invocations(tiny, tmp_path)[name], blocker / "out")
    line = assert_one_line_failure(run(argv))
    assert "blocker" in line and ("not a folder" in line or "in the way" in line), line
    assert "PosixPath" not in line
    assert files(tmp_path) == {"blocker"}


@pytest.mark.parametrize("name", FOLDER_OUTPUTS)
def test_an_output_folder_that_cannot_be_created(tiny, tmp_path, name):
    if os.geteuid() == 0:  # permissions do not stop root; the kernel's sysfs does
        parent = Path("/sys/cryomath-cannot-create")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        parent = locked / "deeper"
    argv = _with_out(invocations(tiny, tmp_path)[name], parent / "out")
    line = assert_one_line_failure(run(argv))
    assert "cannot create the output folder" in line or "not permitted" in line, line
    assert not parent.exists()


@pytest.mark.parametrize("name", sorted(FILE_OUTPUTS))
def test_a_target_that_is_a_folder(tiny, tmp_path, name):
    argv = invocations(tiny, tmp_path)[name]
    target = Path(argv[FILE_OUTPUTS[name]])
    target.mkdir()
    line = assert_one_line_failure(run([*argv, "--force"]))
    assert f"{target} is a folder" in line, line
    assert files(tmp_path) == {target.name}


def test_a_full_disk_is_one_line_and_leaves_no_file(tiny, tmp_path):
    """A file-size limit fails writes as a full disk does (EFBIG instead of ENOSPC), in a child
    process so that the limit is its own."""

    def limit():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "p.mrcs"
    argv = ["project", str(tiny["half1"]), "--poses", str(tiny["star"]), "--out", str(out)]
    cli = [sys.executable, "-c", "from cryomath.cli import run; run()"]
    done = subprocess.run(
        [*cli, *argv], capture_output=True, text=True, preexec_fn=limit, timeout=300
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "file too large" in lines[0] or "no space left" in lines[0], lines[0]
    assert files(tmp_path) == set()


def test_json_is_strict_everywhere(tiny, tmp_path):
    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    assert plain({"a": float("nan"), "b": [float("inf"), 1.0]}) == {"a": None, "b": [None, 1.0]}
    for name, argv in invocations(tiny, tmp_path).items():
        if name == "demo":
            continue  # its summary is checked by tests/test_demo.py; here it would take a minute
        outcome = run([*argv, "--json"])
        assert outcome.code == 0, (name, outcome.stderr)
        json.loads(outcome.stdout, parse_constant=refuse)
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=refuse)


def test_outputs_take_the_users_umask(tiny, tmp_path):
    previous = os.umask(0o027)
    try:
        assert run(["convert", str(tiny["star"]), str(tmp_path / "c.star")]).code == 0
        assert run(["rotations", "grid", "--out", str(tmp_path / "g.star")]).code == 0
    finally:
        os.umask(previous)
    for name in ("c.star", "g.star"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640
