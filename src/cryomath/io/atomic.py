"""Atomic, no-clobber output files.

Writers never leave a half-written file under the final name: data go to a temporary file in
the same directory, which is renamed into place only once complete. An existing output is
overwritten only with ``force=True``; without it the existence check happens before any work
and again, race-free, at the moment of publishing (``os.link`` fails if the name exists).
Outputs get the permissions the user's umask gives new files.

Inside :func:`output_set` the files of a whole command are published together when the block
succeeds; on any failure or interruption every temporary is removed, and so is every folder
the block created that is left empty: nothing blocks a rerun. :func:`published_at_once` opts a
block out (the shards of a resumable run must appear one by one), and
:func:`removed_on_failure` removes such a folder when what it was for fails.
"""

import contextlib
import errno
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from cryomath.errors import OutputExistsError, OutputWriteError, os_error_reason


@dataclass
class _Pending:
    """What an :func:`output_set` block has written but not yet published."""

    files: list[tuple[Path, Path, bool]] = field(default_factory=list)  # (tmp, path, force)
    folders: list[Path] = field(default_factory=list)  # created by the block
    immediate: bool = False  # publish each file when it is complete (published_at_once)


_PENDING: ContextVar[_Pending | None] = ContextVar("cryomath_pending_outputs", default=None)


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """``path`` as a Path; :class:`OutputExistsError` if it exists and ``force`` is False, and
    :class:`OutputWriteError` if it is a folder (a file cannot replace it)."""
    path = Path(path)
    if path.is_dir():
        raise OutputWriteError(f"{path} is a folder; give a file name")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    return path


def writable_directory(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and check that files can be created in it;
    :class:`OutputWriteError` with one clear line otherwise."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputWriteError(
            f"cannot create the output folder {path}: {blocker} is a file, not a folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(
            f"cannot create the output folder {path}: {os_error_reason(exc)}"
        ) from None
    pending = _PENDING.get()
    if pending is not None:
        pending.folders.extend(missing)
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputWriteError(f"the output folder {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it as ``path`` when the block succeeds
    (inside :func:`output_set`: when that block succeeds).

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = check_output_path(path, force)
    with output_set():
        writable_directory(path.parent)
        tmp = None
        try:  # from its creation to its hand-over, an interruption removes the temporary
            while tmp is None:
                # named before it is created, so that an interruption at any instant of the
                # creation finds it to remove (mkstemp returns the name only afterwards)
                tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
                try:  # the umask applies, as to any file the user creates
                    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                except FileExistsError:
                    tmp = None  # another's file: leave it, draw another name
            yield tmp
            pending = _PENDING.get()
            if pending.immediate:
                _publish(tmp, path, force)
            else:
                pending.files.append((tmp, path, force))
                tmp = None  # the output set publishes or removes it now
        except BaseException as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputWriteError(
                    f"no space left on the device while writing {path}"
                ) from None
            raise


def _publish(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(
            f"{path} appeared while it was being written; not overwritten"
        ) from None
    except OSError:  # no hard links on this filesystem: check, then rename
        check_output_path(path)
        os.replace(tmp, path)
    tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then interrupt (main thread only:
    only it may set handlers, and Python runs every handler there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {s: signal.signal(s, lambda n, f: caught.append(n))
                for s in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def output_set() -> Iterator[None]:
    """Publish every file written with :func:`atomic_output` in the block when it succeeds;
    on failure remove their temporaries and the folders the block created that are empty.
    Nested blocks join the outermost one."""
    if _PENDING.get() is not None:
        yield
        return
    pending = _Pending()
    token = _PENDING.set(pending)
    try:
        yield
        with _signals_held():  # an interruption now would publish half of the set
            for tmp, path, force in pending.files:
                _publish(tmp, path, force)
    finally:
        _PENDING.reset(token)
        for tmp, _, _ in pending.files:
            tmp.unlink(missing_ok=True)
        for folder in sorted(set(pending.folders), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: a published output keeps its folder


@contextlib.contextmanager
def published_at_once() -> Iterator[None]:
    """Files written in the block are published as each is complete, even inside an
    :func:`output_set` (a resumable run's shards); folders it creates still count as the outer
    set's."""
    outer = _PENDING.get()
    if outer is None:
        with output_set():
            with published_at_once():
                yield
        return
    token = _PENDING.set(_Pending(folders=outer.folders, immediate=True))
    try:
        yield
    finally:
        _PENDING.reset(token)


@contextlib.contextmanager
def removed_on_failure(folder: str | os.PathLike) -> Iterator[Path]:
    """A folder that the block fills (files published one by one): if the block fails and the
    folder did not exist before it, the folder is removed with all it holds."""
    folder = Path(folder)
    existed = folder.exists()
    try:
        yield folder
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise
