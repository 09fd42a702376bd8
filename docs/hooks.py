"""mkdocs hook: generate the pages that are built from code before the files are collected.

- ``cli.md``: every ``cryomath`` command's ``--help``, from the typer app itself.
- ``guide/NN_*.md``: each guide script (jupytext percent format) as a page: markdown cells as
  text, code cells as Python blocks. The scripts stay the single source; the tests run them.
"""

from pathlib import Path

DOCS = Path(__file__).parent


def _cli_page() -> str:
    import click
    import typer
    from typer.testing import CliRunner

    from cryomath.cli import app

    runner = CliRunner()
    parts = ["# CLI reference\n", "Generated from the command definitions (`--help` of each).\n"]

    def walk(command, words):
        result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
        parts.append(f"## `{' '.join(['cryomath', *words])}`\n\n```text\n{result.output}```\n")
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*words, name])

    walk(typer.main.get_command(app), [])
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
