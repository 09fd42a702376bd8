"""STAR files: a strict reader (errors name the line) and an atomic writer.

A file is read into an ordered ``dict`` of blocks: a ``loop_`` block becomes a
``pandas.DataFrame`` whose columns are the labels without the leading underscore (``rlnAngleRot``),
a block of ``_label value`` pairs becomes a ``dict``. ``data_`` alone gives the block name ``""``.
Values are typed per column: int64, float64, or string. Quoting with ``'`` or ``"`` is honoured.

Large loops are parsed by pandas' C tokenizer; a loop whose rows do not all have one value per
label (or any other malformation) is re-read line by line to report the exact line.
"""

import csv
import io
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from cryomath.errors import InvalidInputError, StarFormatError
from cryomath.io.atomic import atomic_output

StarBlock = pd.DataFrame | dict
_STRUCTURE = re.compile(r"^[ \t]*(?:data_|loop_|_)", re.MULTILINE)


def _tokens(line: str, path: Path, line_no: int) -> list[str]:
    try:
        return shlex.split(line, comments=True, posix=True)
    except ValueError as exc:
        raise StarFormatError(f"{path}:{line_no}: {exc}: {line.strip()[:80]!r}") from None


def _typed(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _typed_frame(rows: list[list[str]], labels: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=labels, dtype=object)
    for label in labels:
        try:
            if (frame[label] == "").any():  # to_numeric would turn '' into NaN
                raise ValueError
            frame[label] = pd.to_numeric(frame[label])
        except (ValueError, TypeError):
            frame[label] = frame[label].astype(str)
    return frame


def _parse_loop_exact(body: str, labels: list[str], path: Path, first_line: int) -> pd.DataFrame:
    rows = []
    for offset, line in enumerate(body.split("\n")):
        tokens = _tokens(line, path, first_line + offset)
        if not tokens:
            continue
        if len(tokens) != len(labels):
            raise StarFormatError(
                f"{path}:{first_line + offset}: row has {len(tokens)} values for {len(labels)} "
                f"columns: {line.strip()[:80]!r}"
            )
        rows.append(tokens)
    return _typed_frame(rows, labels)


def _parse_loop(body: str, labels: list[str], path: Path, first_line: int) -> pd.DataFrame:
    if not body.strip():
        return pd.DataFrame({label: pd.Series(dtype=float) for label in labels})
    if any(c in body for c in "'\"#"):
        return _parse_loop_exact(body, labels, path, first_line)
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=r"\s+",
            header=None,
            names=labels,
            na_filter=False,
            engine="c",
            dtype=None,
        )
    except (pd.errors.ParserError, ValueError):
        return _parse_loop_exact(body, labels, path, first_line)
    last = frame[labels[-1]]
    if last.dtype.kind not in "iuf" and (last == "").any():  # short rows leave '' behind
        return _parse_loop_exact(body, labels, path, first_line)
    for label in labels:
        if frame[label].dtype.kind not in "iuf":
            frame[label] = frame[label].astype(str)
    return frame


def _label(line: str, path: Path, line_no: int) -> tuple[str, list[str]]:
    tokens = _tokens(line, path, line_no)
    name = tokens[0][1:]
    if not name:
        raise StarFormatError(f"{path}:{line_no}: empty label")
    return name, tokens[1:]


def read_star(path: str | os.PathLike) -> dict[str, StarBlock]:
    """Read every block of a STAR file (see module docstring); raise :class:`StarFormatError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is tolerated
    except FileNotFoundError:
        raise StarFormatError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise StarFormatError(f"{path}: not a text file") from None
    except OSError as exc:
        raise StarFormatError(f"{path}: cannot read ({exc})") from None
    blocks: dict[str, StarBlock] = {}
    name: str | None = None
    pos, line_no = 0, 1
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        stripped = text[pos:end].strip()
        next_pos = end + 1
        if not stripped or stripped.startswith("#"):
            pass
        elif stripped.startswith("data_"):
            name = stripped[5:].split()[0] if stripped[5:].strip() else ""
            base, k = name, 2
            while name in blocks:
                name, k = f"{base}_{k}", k + 1
            blocks[name] = {}
        elif name is None:
            raise StarFormatError(
                f"{path}:{line_no}: text before the first data_ block: {stripped[:80]!r}"
            )
        elif stripped == "loop_" or stripped.startswith("loop_ "):
            if isinstance(blocks[name], pd.DataFrame) or blocks[name]:
                raise StarFormatError(f"{path}:{line_no}: a second table in block data_{name}")
            labels = []
            pos, line_no = next_pos, line_no + 1
            while pos < len(text):
                end = text.find("\n", pos)
                end = len(text) if end < 0 else end
                stripped = text[pos:end].strip()
                if stripped.startswith("_"):
                    label = _label(stripped, path, line_no)[0]
                    if label in labels:
                        raise StarFormatError(f"{path}:{line_no}: column _{label} appears twice")
                    labels.append(label)
                elif stripped and not stripped.startswith("#"):
                    break
                pos, line_no = end + 1, line_no + 1
            if not labels:
                raise StarFormatError(f"{path}:{line_no}: loop_ without labels")
            match = _STRUCTURE.search(text, pos)
            body_end = match.start() if match else len(text)
            body = text[pos:body_end]
            blocks[name] = _parse_loop(body, labels, path, line_no)
            line_no += body.count("\n")
            pos = body_end
            continue
        elif stripped.startswith("_"):
            label, values = _label(stripped, path, line_no)
            if len(values) != 1:
                raise StarFormatError(
                    f"{path}:{line_no}: expected one value for _{label}, got {len(values)}"
                )
            if not isinstance(blocks[name], dict):
                raise StarFormatError(f"{path}:{line_no}: _{label} after a loop in the same block")
            blocks[name][label] = _typed(values[0])
        else:
            raise StarFormatError(
                f"{path}:{line_no}: unexpected text outside a loop: {stripped[:80]!r}"
            )
        pos, line_no = next_pos, line_no + 1
    if not blocks:
        raise StarFormatError(f"{path}: no data_ block (not a STAR file?)")
    return blocks


def _quoted(value: str) -> str:
    if value == "" or any(c.isspace() for c in value):
        return f"'{value}'" if '"' in value else f'"{value}"'
    return value


def _format_value(value) -> str:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _loop_text(frame: pd.DataFrame) -> str:
    out = frame.copy()
    needs_quotes = False
    for label in out.columns:
        column = out[label]
        if column.dtype.kind in "iub":
            continue
        if column.dtype.kind == "f":
            if not np.isfinite(column.to_numpy()).all():
                raise InvalidInputError(f"column {label} contains NaN or inf; STAR cannot hold it")
            continue
        out[label] = column.astype(str).map(_quoted)
        needs_quotes = needs_quotes or bool(out[label].str.contains(r"[\s'\"]").any())
    if needs_quotes:  # the csv writer cannot emit quoted, space-containing values unescaped
        text = out.astype(str)
        rows = text.iloc[:, 0].str.cat([text[c] for c in text.columns[1:]], sep=" ")
        return "\n".join(rows) + "\n"
    return out.to_csv(
        sep=" ", header=False, index=False, quoting=csv.QUOTE_NONE, lineterminator="\n"
    )


def write_star(
    path: str | os.PathLike, blocks: dict[str, StarBlock], *, force: bool = False
) -> None:
    """Write ``blocks`` (as returned by :func:`read_star`) to ``path`` atomically.

    Floats are written with full precision (``repr``), so reading back gives identical values.
    """
    parts = []
    for name, block in blocks.items():
        parts.append(f"\n# version 30001\n\ndata_{name}\n\n")
        if isinstance(block, pd.DataFrame):
            if block.columns.empty:
                raise InvalidInputError(f"block {name!r} has no columns")
            parts.append("loop_\n")
            parts.extend(f"_{label} #{i}\n" for i, label in enumerate(block.columns, start=1))
            parts.append(_loop_text(block))
        elif isinstance(block, dict):
            width = max((len(k) for k in block), default=0) + 2
            parts.extend(f"_{k:<{width}}{_format_value(v)}\n" for k, v in block.items())
        else:
            raise InvalidInputError(f"block {name!r} must be a DataFrame or a dict")
    with atomic_output(path, force=force) as tmp:
        Path(tmp).write_text("".join(parts))
