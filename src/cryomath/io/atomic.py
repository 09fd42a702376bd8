"""Atomic, no-clobber output files.

Writers never leave a half-written file under the final name: data go to a temporary file in
the same directory, which is renamed into place only once complete. An existing output is
overwritten only with ``force=True``; without it the existence check happens before any work
and again, race-free, at the moment of publishing (``os.link`` fails if the name exists).
"""

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryomath.errors import OutputExistsError, OutputWriteError


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """``path`` as a Path; :class:`OutputExistsError` if it exists and ``force`` is False."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    return path


def writable_directory(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and check that files can be created in it;
    :class:`OutputWriteError` with one clear line otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputWriteError(f"the output folder {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it as ``path`` when the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = check_output_path(path, force)
    writable_directory(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputWriteError(
                    f"no space left on the device while writing {path}"
                ) from None
            raise
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(
                    f"{path} appeared while it was being written; not overwritten"
                ) from None
            except OSError:  # no hard links on this filesystem: check, then rename
                check_output_path(path)
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
