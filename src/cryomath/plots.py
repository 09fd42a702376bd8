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


def plot_images(images: dict, path: Path, title: str, force: bool) -> None:
    """Rows of images: ``{row label: (k, y, x) array}``, each image on its own grey scale."""
    plt = _figure()
    rows = list(images.items())
    k = max(len(v) for _, v in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(1.6 * k, 1.7 * len(rows)), squeeze=False)
    for r, (label, stack) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(stack):
                ax.imshow(stack[c], cmap="gray", origin="lower")
        axes[r, 0].set_title(label, loc="left", fontsize=9)
    fig.suptitle(title)
    _save(fig, path, force)


def plot_gallery(images: np.ndarray, labels: list[str], path: Path, title: str, force: bool):
    """A grid of ``images (k, y, x)`` (up to 10 a row), each with its label."""
    plt = _figure()
    k = len(images)
    cols = min(k, 10)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            ax.imshow(images[i], cmap="gray", origin="lower")
            ax.set_title(labels[i], fontsize=7)
    fig.suptitle(title)
    _save(fig, path, force)


def plot_ctf(
    ctf_image: np.ndarray, frequency_per_angstrom: np.ndarray, profile: np.ndarray, path: Path,
    title: str, force: bool,
) -> None:  # fmt: skip
    """A centred 2-D CTF and its profile along one axis."""
    plt = _figure()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.imshow(ctf_image, cmap="gray", origin="lower", vmin=-1, vmax=1)
    left.set_title("2-D CTF (centred)")
    left.axis("off")
    right.plot(frequency_per_angstrom, profile)
    right.axhline(0, color="grey", lw=0.8)
    right.set_xlabel("spatial frequency (1/A)")
    right.set_ylabel("CTF")
    fig.suptitle(title)
    _save(fig, path, force)


def plot_overlay(background: np.ndarray, contour: np.ndarray, path: Path, title: str,
                 force: bool) -> None:  # fmt: skip
    """Central sections (xy, xz, yz) of ``background (z, y, x)`` in grey with the contours of
    ``contour`` (same grid) at 3 levels on top."""
    plt = _figure()
    n = background.shape
    sections = (
        ("xy", background[n[0] // 2], contour[n[0] // 2]),
        ("xz", background[:, n[1] // 2], contour[:, n[1] // 2]),
        ("yz", background[:, :, n[2] // 2], contour[:, :, n[2] // 2]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    levels = np.quantile(contour, [0.95, 0.98, 0.995])
    for ax, (name, back, front) in zip(axes, sections, strict=True):
        ax.imshow(back, cmap="gray", origin="lower")
        ax.contour(front, levels=levels, colors=["#1f77b4", "#ff7f0e", "#d62728"], linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    _save(fig, path, force)


def plot_drift(drift_px: np.ndarray, path: Path, title: str, force: bool) -> None:
    """A movie's drift (x, y per frame, pixels) as a track, the first frame marked."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(drift_px[:, 0], drift_px[:, 1], "-o", ms=3)
    ax.plot(drift_px[:1, 0], drift_px[:1, 1], "s", ms=6, label="first frame")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend()
    _save(fig, path, force)


def plot_tracks(positions_px: np.ndarray, tracks_px: np.ndarray, path: Path, title: str,
                force: bool) -> None:  # fmt: skip
    """Each particle's track ``(P, F, 2)`` drawn at its position ``(P, 2)`` (pixels), its
    motion magnified so that the largest spans a tenth of the field; a dot at the start."""
    plt = _figure()
    motion = tracks_px - tracks_px[:, :1]
    extent = np.ptp(positions_px, axis=0).max() if len(positions_px) > 1 else 1.0
    gain = 0.1 * max(extent, 1.0) / max(np.abs(motion).max(), 1e-9)
    fig, ax = plt.subplots(figsize=(5, 5))
    for (x, y), m in zip(positions_px, motion * gain, strict=True):
        ax.plot(x + m[:, 0], y + m[:, 1], "-", lw=1)
        ax.plot(x, y, ".", ms=3, color="k")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.invert_yaxis()  # image rows downwards, as the micrograph is shown
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{title} (motion x{gain:.0f})")
    _save(fig, path, force)


def plot_latent(latent: np.ndarray, variances: np.ndarray, path: Path, title: str,
                force: bool) -> None:  # fmt: skip
    """Latent coordinates ``(N, K)``: the variance of each component, the histogram of the
    first, and the first two against each other."""
    plt = _figure()
    panels = 3 if latent.shape[1] > 1 else 2
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.5))
    axes[0].bar(np.arange(1, len(variances) + 1), variances)
    axes[0].set_xlabel("component")
    axes[0].set_ylabel("variance")
    axes[1].hist(latent[:, 0], bins=60)
    axes[1].set_xlabel("latent 1")
    if panels == 3:
        axes[2].scatter(latent[:, 0], latent[:, 1], s=2, alpha=0.4)
        axes[2].set_xlabel("latent 1")
        axes[2].set_ylabel("latent 2")
    fig.suptitle(title)
    _save(fig, path, force)


def plot_embedding(points: np.ndarray, labels: np.ndarray, losses: list[float], path: Path,
                   title: str, force: bool) -> None:  # fmt: skip
    """A 2-D embedding ``(N, 2)`` (or 1-D ``(N, 1)``: its histogram per label) coloured by
    ``labels``, the state centres numbered, and the training objective per epoch."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    states = np.unique(labels)
    for s in states:
        mine = points[labels == s]
        if points.shape[1] > 1:
            axes[0].scatter(mine[:, 0], mine[:, 1], s=2, alpha=0.4, label=f"state {s + 1}")
            axes[0].annotate(str(s + 1), mine[:, :2].mean(0), fontsize=12, weight="bold")
        else:
            axes[0].hist(mine[:, 0], bins=40, alpha=0.6, label=f"state {s + 1}")
    axes[0].set_xlabel("embedding 1")
    axes[0].set_ylabel("embedding 2" if points.shape[1] > 1 else "particles")
    axes[0].legend(fontsize=7, markerscale=4)
    axes[1].plot(np.arange(1, len(losses) + 1), losses, "o-")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("objective per sample")
    fig.suptitle(title)
    _save(fig, path, force)
