"""Printing results: JSON for scripts, rich tables for people."""

import json

import numpy as np
from rich.console import Console
from rich.table import Table


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def emit(result: dict, as_json: bool, title: str) -> None:
    """Print ``result`` as JSON (``as_json``) or as a two-column table."""
    if as_json:
        print(json.dumps(_plain(result), indent=2))
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in _plain(result).items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)
