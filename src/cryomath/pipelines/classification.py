"""Files around 2-D classification: a checkpoint every iteration (``--continue``), and the
outputs RELION reads back.

Outputs in ``out``: ``classes.mrcs`` (the class averages), ``particles.star`` (class number,
in-plane angle, origins, ``rlnMaxValueProbDistribution``, ``rlnLogLikeliContribution``,
``rlnNrOfSignificantSamples``), ``model.star`` (each class's average, fraction, particle count
and resolution: RELION's ``model_classes`` block), ``classes.png`` (the gallery, largest class
first, with counts and resolutions) and ``iterations.json``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryomath.errors import InvalidInputError
from cryomath.inference.class2d import (
    Class2DSettings,
    Class2DState,
    class2d_iteration,
    class_resolutions,
    start_class2d,
)
from cryomath.pipelines.expectation import pass_runner
from cryomath.pipelines.refinement import (
    iterate_with_checkpoints,
    particles_table,
    resumed_or_started,
)

OUTPUTS = ("classes.mrcs", "particles.star", "model.star", "classes.png", "iterations.json")


def classify_particles(
    table, out: Path, settings: Class2DSettings, *, resume: bool = False, device=None,
    dtype=torch.float32, progress=None, on_iteration=None, client=None,
) -> Class2DState:  # fmt: skip
    """Run (or continue) ``settings.iterations`` of 2-D classification, checkpointing after
    each; ``progress(k)`` as particles are scored, ``on_iteration(line)`` after each;
    ``client``: a Dask client that runs the expectation passes (``pipelines.expectation``)."""
    passes = pass_runner(client)
    state = resumed_or_started(out, resume, Class2DState, table.n,
                               lambda: start_class2d(table, settings, dtype, device))  # fmt: skip
    return iterate_with_checkpoints(
        state, out, lambda s: s.iteration < settings.iterations,
        lambda s: class2d_iteration(table, s, settings, dtype, device, progress, passes),
        on_iteration,
    )  # fmt: skip


def write_class2d(table, state: Class2DState, out: Path, title: str, force: bool) -> dict:
    """The outputs of a classification (module docstring); returns the summary."""
    from cryomath.io import write_mrc, write_relion_star, write_star
    from cryomath.io.atomic import output_set
    from cryomath.io.results import write_json
    from cryomath.plots import plot_gallery

    averages = state.averages.float().cpu().numpy()
    k = len(averages)
    counts = np.bincount(state.particles.classes, minlength=k)
    resolution = class_resolutions(state)
    images = [f"{i + 1:06d}@classes.mrcs" for i in range(k)]
    model = model_classes(images, state.fractions, counts, resolution)
    order = np.argsort(-counts, kind="stable")
    labels = [f"class {i + 1}: {counts[i]}, {resolution[i]:.1f} A" for i in order]
    with output_set():
        write_mrc(out / "classes.mrcs", averages, state.pixel_size_angstrom, force=force)
        write_relion_star(particles_table(table, state, out), out / "particles.star",
                          force=force)  # fmt: skip
        write_star(out / "model.star", {"model_classes": model}, force=force)
        plot_gallery(averages[order], labels, out / "classes.png", title, force)
        write_json(out / "iterations.json", {"iterations": state.history}, force)
    return {"classes": k, "class_counts": counts.tolist(), "class_resolution_angstrom":
            resolution, "empty_classes": empty_classes(counts),
            "iterations": state.iteration}  # fmt: skip


def empty_classes(counts: np.ndarray) -> list[int]:
    """The classes (1-based) no particle chose: kept with their last map and a count of 0 (as
    RELION does; they are in the outputs, not renumbered)."""
    return [int(i) + 1 for i in np.flatnonzero(counts == 0)]


def model_classes(images: list[str], fractions, counts, resolution) -> pd.DataFrame:
    """RELION's ``model_classes`` block: each class's image, fraction, particle count and
    resolution (999 where undefined, as RELION writes it)."""
    return pd.DataFrame({
        "rlnReferenceImage": images,
        "rlnClassDistribution": fractions,
        "rlnClassParticleCount": counts,
        "rlnEstimatedResolution": [r if np.isfinite(r) else 999.0 for r in resolution],
    })  # fmt: skip


def select_classes(table, classes: list[int]) -> np.ndarray:
    """The rows of a classified ``table`` (``rlnClassNumber`` in its extra columns) whose class
    (1-based) is one of ``classes``."""
    if "rlnClassNumber" not in table.extra.columns:
        raise InvalidInputError("the particles have no rlnClassNumber: classify them first")
    present = set(np.unique(table.extra["rlnClassNumber"]).tolist())
    missing = sorted(set(classes) - present)
    if missing:
        raise InvalidInputError(f"no particles in class(es) {missing}; classes present: "
                                f"{sorted(present)}")  # fmt: skip
    return np.flatnonzero(np.isin(table.extra["rlnClassNumber"].to_numpy(), classes))
