"""Exceptions raised by cryomath.

Every error a user can cause (a bad file, a bad argument, an existing output) raises a subclass
of :class:`CryomathError`, so callers and the CLI can catch one type and show one line.
"""

import errno
import math


class CryomathError(Exception):
    """Base class of every error cryomath raises on purpose."""


class InvalidInputError(CryomathError, ValueError):
    """An argument has the wrong shape, dtype, range, or contains NaN/inf."""


class FileFormatError(CryomathError):
    """A file is corrupt, truncated, or not of the format its name claims."""


class MRCFormatError(FileFormatError):
    """An MRC/CCP4 file cannot be read."""


class StarFormatError(FileFormatError):
    """A STAR file is malformed; the message names the line."""


class CryoSparcFormatError(FileFormatError):
    """A cryoSPARC ``.cs`` file cannot be read or lacks required fields."""


class PickleFormatError(FileFormatError):
    """A cryoDRGN pickle does not hold what it should."""


class MissingColumnsError(FileFormatError):
    """A metadata table lacks columns needed for the requested operation."""


class OutputExistsError(CryomathError, FileExistsError):
    """An output path exists and overwriting was not requested (``force=True`` / ``--force``)."""


class NotARotationError(InvalidInputError):
    """A matrix is too far from orthogonal with determinant +1 to be a rotation."""


class UnknownColumnError(StarFormatError):
    """A STAR table has columns cryomath does not know (and was not told to carry through)."""


class OutputWriteError(CryomathError, OSError):
    """An output cannot be written: the folder is not writable, or the disk is full."""


def holds(condition) -> bool:
    """``bool(condition)`` for a check on data; ``True`` for a tensor on the meta device, which
    has shapes but no values (shape-only runs, and the tests that no code assumes the CPU)."""
    if getattr(condition, "device", None) is not None and condition.device.type == "meta":
        return True
    return bool(condition)


def check_positive(value: float, quantity: str, unit: str = "") -> float:
    """``value`` as a float when it is a positive finite number; otherwise one line naming
    ``quantity`` and what it is (NaN is not called zero)."""
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        shown = "NaN" if math.isnan(v) else f"{v:g}" + (f" {unit}" if unit else "")
        raise InvalidInputError(f"{quantity} is {shown}; it must be a positive number")
    return v


_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "already exists",
    errno.ENOENT: "no such file or folder",
    errno.EFBIG: "file too large for this file system or limit",
}


def os_error_reason(exc: OSError) -> str:
    """What an operating-system failure means, in the user's words."""
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def os_error_message(exc: OSError) -> str:
    """An operating-system failure as one line: the path(s), then what went wrong."""
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(str(p) for p in paths)
    return f"{where}: {os_error_reason(exc)}" if where else os_error_reason(exc)
