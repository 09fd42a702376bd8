"""Files around 3-D classification: a checkpoint every iteration (``--continue``) and the
outputs RELION reads back: ``classNNN.mrc`` (one map per class), ``particles.star`` (class,
pose, origins and RELION's per-particle summaries), ``model.star`` (each class's map, fraction,
particle count and resolution), ``classes.png`` (central sections of every class, largest
first) and ``iterations.json``.
"""

from pathlib import Path

import numpy as np
import torch

from cryomath.inference.class3d import (
    Class3DSettings,
    Class3DState,
    class3d_iteration,
    class_resolutions,
    start_class3d,
)
from cryomath.pipelines.classification import empty_classes, model_classes
from cryomath.pipelines.expectation import pass_runner
from cryomath.pipelines.refinement import (
    iterate_with_checkpoints,
    particles_table,
    resumed_or_started,
)


def outputs_3d(n_classes: int) -> tuple[str, ...]:
    """The file names a 3-D classification of ``n_classes`` writes."""
    maps = tuple(f"class{k + 1:03d}.mrc" for k in range(n_classes))
    return (*maps, "particles.star", "model.star", "classes.png", "iterations.json")


def classify_particles_3d(
    table, references: torch.Tensor, voxel_size_angstrom: float, out: Path,
    settings: Class3DSettings, *, resume: bool = False, device=None, dtype=torch.float32,
    progress=None, on_iteration=None, client=None,
) -> Class3DState:  # fmt: skip
    """Run (or continue) ``settings.iterations`` of 3-D classification from ``references
    (K or 1, n, n, n)``, checkpointing after each; ``progress(k)`` as particles are scored,
    ``on_iteration(line)`` after each; ``client``: a Dask client that runs the
    expectation passes (``pipelines.expectation``)."""
    passes = pass_runner(client)
    state = resumed_or_started(out, resume, Class3DState, table.n, lambda: start_class3d(
        table, references, voxel_size_angstrom, settings, dtype, device))  # fmt: skip
    return iterate_with_checkpoints(
        state, out, lambda s: s.iteration < settings.iterations,
        lambda s: class3d_iteration(table, s, settings, dtype, device, progress, passes),
        on_iteration,
    )  # fmt: skip


def write_class3d(table, state: Class3DState, out: Path, title: str, force: bool) -> dict:
    """The outputs of a 3-D classification (module docstring); returns the summary."""
    from cryomath.io import write_mrc, write_relion_star, write_star
    from cryomath.io.atomic import output_set
    from cryomath.io.results import write_json
    from cryomath.plots import plot_gallery

    maps = state.maps.float().cpu().numpy()
    k, n = len(maps), maps.shape[-1]
    counts = np.bincount(state.particles.classes, minlength=k)
    resolution = class_resolutions(state, 0.143)
    images = [f"class{i + 1:03d}.mrc" for i in range(k)]
    model = model_classes(images, state.fractions, counts, resolution)
    order = np.argsort(-counts, kind="stable")
    sections = np.stack([[m[n // 2], m[:, n // 2], m[:, :, n // 2]] for m in maps[order]])
    labels = [f"class {i + 1} {axis}: {counts[i]}, {resolution[i]:.1f} A" for i in order
              for axis in ("xy", "xz", "yz")]  # fmt: skip
    with output_set():
        for i, volume in enumerate(maps):
            write_mrc(out / f"class{i + 1:03d}.mrc", volume, state.voxel_size_angstrom,
                      force=force)  # fmt: skip
        write_relion_star(particles_table(table, state, out), out / "particles.star",
                          force=force)  # fmt: skip
        write_star(out / "model.star", {"model_classes": model}, force=force)
        plot_gallery(sections.reshape(-1, n, n), labels, out / "classes.png", title, force)
        write_json(out / "iterations.json", {"iterations": state.history}, force)
    return {"classes": k, "class_counts": counts.tolist(), "class_resolution_angstrom":
            resolution, "empty_classes": empty_classes(counts),
            "iterations": state.iteration}  # fmt: skip
