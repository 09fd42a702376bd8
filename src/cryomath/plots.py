"""Figures written next to the numbers (matplotlib, imported only when a figure is asked for)."""

from pathlib import Path

import numpy as np

from cryomath.io.atomic import atomic_output


def plot_directions(rot_tilt_degrees: np.ndarray, path: Path, title: str, force: bool) -> None:
    """Projection directions (rot, tilt) as a Mollweide map, written atomically as PNG."""
    plt = _figure()
    rot = np.radians((rot_tilt_degrees[:, 0] + 180.0) % 360.0 - 180.0)
    latitude = np.radians(90.0 - rot_tilt_degrees[:, 1])
    fig = plt.figure(figsize=(8, 4.5))
    ax = fig.add_subplot(projection="mollweide")
    ax.scatter(rot, latitude, s=4, alpha=0.6)
    ax.set_title(title)
    ax.grid(True)
    _save(fig, path, force)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, force: bool) -> None:
    plt = _figure()
    with atomic_output(path, force) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_fsc(
    frequency_per_angstrom: np.ndarray, curves: dict, path: Path, title: str, force: bool
) -> None:
    """FSC curves against spatial frequency, with the 0.143 and 0.5 thresholds."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        ax.plot(frequency_per_angstrom, values, label=label)
    for level in (0.143, 0.5):
        ax.axhline(level, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(title)
    ax.legend()
    _save(fig, path, force)


def plot_guinier(s2: np.ndarray, curves: dict, path: Path, title: str, force: bool) -> None:
    """ln |F| against s^2 (1/A^2)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        ax.plot(s2, values, label=label)
    ax.set_xlabel("s^2 (1/A^2)")
    ax.set_ylabel("ln |F|")
    ax.set_title(title)
    ax.legend()
    _save(fig, path, force)
