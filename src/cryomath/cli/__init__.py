"""The ``cryomath`` command line. Every command takes ``--json`` for scripts; errors print one
line (``cryomath: error: ...``) and exit with status 1 (usage errors: typer's message, status 2)."""

import sys

import typer

from cryomath.cli import convert, fitting, info, resolution, rotations, simulate
from cryomath.errors import CryomathError

app = typer.Typer(
    name="cryomath",
    help="The mathematics of single-particle cryo-EM: files, rotations, Fourier tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("info")(info.info)
app.command("convert")(convert.convert)
app.add_typer(rotations.app, name="rotations")
app.command("simulate")(simulate.simulate)
app.command("project")(simulate.project)
app.command("demo")(simulate.demo)
app.command("reconstruct")(resolution.reconstruct)
app.command("fsc")(resolution.fsc)
app.command("postprocess")(resolution.postprocess)
app.command("align-maps")(fitting.align_maps)
app.command("search-maps")(fitting.search_maps)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; a cryomath error becomes one line on stderr and status 1."""
    try:
        app(args=argv, prog_name="cryomath")
    except CryomathError as exc:
        print(f"cryomath: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run() -> None:
    """Console-script wrapper around :func:`main`."""
    sys.exit(main())


if __name__ == "__main__":
    run()
