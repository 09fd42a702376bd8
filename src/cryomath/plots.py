"""Figures written next to the numbers (matplotlib, imported only when a figure is asked for)."""

from pathlib import Path

import numpy as np

from cryomath.io.atomic import atomic_output


def plot_directions(rot_tilt_degrees: np.ndarray, path: Path, title: str, force: bool) -> None:
    """Projection directions (rot, tilt) as a Mollweide map, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rot = np.radians((rot_tilt_degrees[:, 0] + 180.0) % 360.0 - 180.0)
    latitude = np.radians(90.0 - rot_tilt_degrees[:, 1])
    fig = plt.figure(figsize=(8, 4.5))
    ax = fig.add_subplot(projection="mollweide")
    ax.scatter(rot, latitude, s=4, alpha=0.6)
    ax.set_title(title)
    ax.grid(True)
    with atomic_output(path, force) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
