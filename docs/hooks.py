"""mkdocs hook: generate the pages that are built from code before the files are collected.

- ``cli.md``: every ``cryomath`` command's ``--help``, from the typer app itself.
- ``guide/NN_*.md``: each guide script (jupytext percent format) as a page: markdown cells as
  text, code cells as Python blocks. The scripts stay the single source; the tests run them.
"""

from pathlib import Path

DOCS = Path(__file__).parent


def _cli_page() -> str:
    import typer
    from typer.testing import CliRunner

    from cryomath.cli import app
    from cryomath.cli.ranges import RANGES

    runner = CliRunner()
    parts = ["# CLI reference\n", "Generated from the command definitions (`--help` of each).\n"]

    def walk(command, words):
        result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
        parts.append(f"## `{' '.join(['cryomath', *words])}`\n\n```text\n{result.output}```\n")
        for name, child in sorted(getattr(command, "commands", {}).items()):
            walk(child, [*words, name])

    walk(typer.main.get_command(app), [])
    rows = [
        f"| `{name}` | {r.kind.__name__} | {r.describe()} |\n" for name, r in sorted(RANGES.items())
    ]
    parts.append(
        "## Failures, outputs and value ranges\n\n"
        "Every failure is one line on stderr: `cryomath: error: ...` with status 1 (a bad "
        "value, file or folder: fix it and rerun), 2 (usage: an unknown option or a missing "
        "argument), `cryomath: interrupted` with status 130 (Ctrl-C or SIGTERM), or 3 for a "
        "failure cryomath did not foresee (a bug; `CRYOMATH_DEBUG=1` shows the traceback). "
        "A command's output files appear together when it succeeds; a failed or interrupted "
        "command leaves none, and no folder it created (`simulate` keeps its finished shards "
        "and `simulation.json`, for `--resume`). Outputs take the user's umask; JSON output "
        "is strict (no NaN or Infinity: `null`). Requests that need more memory than the "
        "machine has free are refused before they start, with both figures.\n\n"
        "Every numeric option is checked before any work; an option name means the same "
        "quantity, with the same range, in every command that takes it. Floats must be "
        "finite.\n\n| option | type | range |\n|---|---|---|\n" + "".join(rows)
    )
    return "\n".join(parts)


def _guide_page(script: Path) -> str:
    cells, kind, lines = [], None, []
    for line in script.read_text().splitlines():
        if line.startswith("# %%"):
            if lines:
                cells.append((kind, lines))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    if lines:
        cells.append((kind, lines))
    out = []
    for kind, body in cells:
        if kind == "markdown":
            out.append(
                "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body)
            )
        elif "\n".join(body).strip():
            out.append("```python\n" + "\n".join(body).strip() + "\n```")
    source = f"\n\n*Source: `docs/guide/{script.name}` (run by the test suite).*\n"
    return "\n\n".join(out) + source


def on_pre_build(config) -> None:
    (DOCS / "cli.md").write_text(_cli_page())
    for script in sorted((DOCS / "guide").glob("[0-9][0-9]_*.py")):
        script.with_suffix(".md").write_text(_guide_page(script))
