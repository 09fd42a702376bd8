"""The ``cryomath`` command line. Every command takes ``--json`` for scripts.

Every failure is one line on stderr and a non-zero status: ``cryomath: error: ...`` with status
1 for what the user can fix (a bad value, file or folder), status 2 for usage errors (unknown
options, missing arguments), 130 for an interruption (Ctrl-C or SIGTERM, after the command's
temporaries are removed) and 3 for a failure cryomath did not foresee (a bug: set
``CRYOMATH_DEBUG=1`` for its traceback). A command's output files are published together when
it succeeds; a failed or interrupted one leaves none, and no folder it created empty
(:func:`cryomath.io.atomic.output_set`).
"""

import os
import signal
import sys

import typer

from cryomath.cli import (
    abinitio,
    convert,
    denoise,
    fitting,
    heterogeneity,
    inference,
    info,
    motion,
    resolution,
    rotations,
    simulate,
)
from cryomath.cli.ranges import checked_command
from cryomath.errors import CryomathError, os_error_message
from cryomath.io.atomic import output_set

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
app.command("denoise")(denoise.denoise)
app.command("motioncorr")(motion.motioncorr)
app.command("polish")(motion.polish)
app.command("class2d")(inference.class2d)
app.command("class3d")(inference.class3d)
app.command("select")(inference.select)
app.command("refine")(inference.refine)
app.command("abinitio")(abinitio.abinitio)
app.command("variability")(heterogeneity.variability)
app.command("train-vae")(heterogeneity.train_vae)
app.command("analyze")(heterogeneity.analyze)
app.command("align-maps")(fitting.align_maps)
app.command("search-maps")(fitting.search_maps)


def command():
    """The click command tree of :data:`app`, every numeric option checked against its range
    (:mod:`cryomath.cli.ranges`) before the command runs."""
    return checked_command(typer.main.get_command(app))


_SIGNALLED: list[int] = []  # the interruptions received while a command runs


def _interrupt(signum, frame):
    """Ctrl-C (SIGINT) and a scheduler's kill (SIGTERM), handled alike: recorded, then raised
    as KeyboardInterrupt, which removes the command's temporaries. The record tells an
    interruption from a bug where a library turns the KeyboardInterrupt into an error of its own
    (matplotlib's C++ array converters raise ValueError("Invalid affine transformation matrix"),
    with no trace of it, when one arrives while they convert)."""
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    print(" ".join(message.split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; every failure becomes one line on stderr (see above)."""
    from typer.exceptions import TyperException

    from cryomath.devices import keep_freed_host_memory

    keep_freed_host_memory()  # a command owns its process: freed memory reused (1.5x faster)
    previous = {}
    _SIGNALLED.clear()
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signum == signal.SIGINT and signal.getsignal(signum) != signal.default_int_handler:
                continue  # ignored (a background job) or the caller's own: left as it is
            previous[signum] = signal.signal(signum, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        with output_set():  # a command's outputs appear together, or not at all
            result = command().main(args=argv, prog_name="cryomath", standalone_mode=False)
            if result == 130:  # typer turned an interruption into a status: publish nothing
                raise KeyboardInterrupt
        return result if isinstance(result, int) else 0
    except CryomathError as exc:
        _say(f"cryomath: error: {exc}")
        return 1
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad type
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if message:  # an empty one follows a help page printed for a bare command
            _say(f"cryomath: error: {message}")
        return getattr(exc, "exit_code", 2)
    except (KeyboardInterrupt, EOFError):
        _say("cryomath: interrupted")
        return 130
    except OSError as exc:
        _say(f"cryomath: error: {os_error_message(exc)}")
        return 1
    except MemoryError:
        _say("cryomath: error: out of memory")
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if _SIGNALLED:  # an interruption a library turned into its own error (_interrupt)
            _say("cryomath: interrupted")
            return 130
        if isinstance(exc, RuntimeError) and "allocate" in str(exc):  # torch's out of memory
            _say("cryomath: error: out of memory (the request exceeds what the device has)")
            return 1
        if os.environ.get("CRYOMATH_DEBUG"):
            raise
        _say(f"cryomath: internal error: {type(exc).__name__}: {exc} "
             "(a bug; CRYOMATH_DEBUG=1 shows where)")  # fmt: skip
        return 3
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run() -> None:
    """Console-script wrapper around :func:`main`."""
    sys.exit(main())


if __name__ == "__main__":
    run()
