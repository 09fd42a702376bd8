"""Files around the neural model of heterogeneity (``cryomath train-vae``, ``cryomath
analyze``): training streamed from the particle files in a seeded random order of chunks, a
checkpoint after every epoch (``--continue``), then the latents and what they show.

``train-vae`` writes in ``out``: ``checkpoint.pt`` (the model, its optimisers, the epoch),
``latent.npy`` ``(N, D)`` (each particle's posterior mean under the trained decoder, by
importance sampling around Laplace's approximation at the encoder's mean or the
autodecoder's latent; in the table's order), ``latent_sd.npy`` (its posterior standard deviations),
``mean.mrc`` (the map at ``z = 0``) and ``training.json`` (settings and objective per epoch).
``analyze`` adds ``embedding.png`` (the latents, by PCA to 2-D when ``D > 2``, coloured by
k-means state, and the objective per epoch), ``states.npy`` (each particle's state),
``state_K.mrc`` (the decoder's map at each state's centre) and ``analysis.json``.
"""

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.heterogeneity import kmeans
from cryomath.heterogeneity.neural import NeuralModel, NeuralSettings
from cryomath.imaging import iter_batches
from cryomath.io import write_mrc
from cryomath.io.atomic import check_output_path, writable_directory
from cryomath.io.results import write_array, write_json
from cryomath.pipelines.denoising import background_noise
from cryomath.pipelines.refinement import CHECKPOINT, load_checkpoint, save_checkpoint
from cryomath.plots import plot_embedding
from cryomath.reconstruction import accumulate_halves, half_subsets, maps_from_halves
from cryomath.reconstruction.direct import volume_grid

CHUNK = 1024  # particles read at a time, shuffled into minibatches
TRAINED = ("latent.npy", "latent_sd.npy", "mean.mrc", "training.json")


def _chunks(table, seed: int, epoch: int, device):
    order = np.random.default_rng([seed, epoch]).permutation(table.n)
    for start in range(0, table.n, CHUNK):
        yield from iter_batches(table, CHUNK, device, torch.float64,
                                rows=order[start : start + CHUNK])  # fmt: skip


def train_neural_model(table, out: Path, settings: NeuralSettings, *, resume: bool = False,
                       particle_diameter_angstrom: float | None = None, device=None,
                       force: bool = False, progress: Callable[[int], None] | None = None,
                       on_epoch: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Train (or with ``resume`` continue, up to ``settings.epochs``) the model of
    ``heterogeneity.neural`` on ``table`` 's particles with their poses and CTFs (the
    consensus from their gold-standard halves, the noise from the background outside
    ``particle_diameter_angstrom``); ``progress(k)`` as particles are
    used, ``on_epoch(line)`` after each epoch. Returns a summary."""
    table.require("rotations", "ctf", "pixel_size_angstrom", purpose="training a neural model")
    n, voxel = volume_grid(table)
    for name in TRAINED:
        check_output_path(out / name, force or resume)
    if resume:
        model = load_checkpoint(out)
        if not isinstance(model, NeuralModel) or model.n_particles != table.n:
            raise InvalidInputError(f"{out / CHECKPOINT} is from another run or other particles")
        model.settings = replace(model.settings, epochs=settings.epochs,
                                 posterior_samples=settings.posterior_samples)  # fmt: skip
    else:
        check_output_path(out / CHECKPOINT, force)
        noise = background_noise(iter_batches(table, 256, device, torch.float64, use_ctf=False),
                                 n, voxel, particle_diameter_angstrom)  # fmt: skip
        halves = accumulate_halves(table, half_subsets(table), device=device)
        consensus = maps_from_halves(halves).full
        first = next(_chunks(table, settings.seed, 0, device))
        model = NeuralModel(first, table.n, voxel, noise, settings, consensus)
    while model.epoch < model.settings.epochs:
        loss = model.train_epoch(_chunks(table, model.settings.seed, model.epoch, device),
                                 progress)  # fmt: skip
        save_checkpoint(model, out)
        if on_epoch is not None:
            on_epoch(f"epoch {model.epoch}: objective {loss:.5f} per sample")
    latent, sd = model.latents(iter_batches(table, CHUNK, device, torch.float64))
    writable_directory(out)
    write_array(out / "latent.npy", latent.numpy(), True)
    write_array(out / "latent_sd.npy", sd.numpy(), True)
    zero = torch.zeros(model.settings.latent_dim)
    write_mrc(out / "mean.mrc", model.volume(zero).cpu().float().numpy(), voxel, force=True)
    summary = {"particles": table.n, "epochs": model.epoch, "max_shell": model.max_shell,
               "resolution_angstrom": n * voxel / model.max_shell,
               "objective": model.losses, "settings": asdict(model.settings),
               "latent": str(out / "latent.npy"), "output": str(out)}  # fmt: skip
    write_json(out / "training.json", summary, True)
    return summary


def analyze_neural_model(out: Path, states: int = 3, force: bool = False) -> dict:
    """The states of a trained model's latents (``train_neural_model``'s ``out``) by k-means,
    their maps and the embedding figure (module docstring). Returns a summary."""
    model = load_checkpoint(out)
    if not isinstance(model, NeuralModel):
        raise InvalidInputError(f"{out / CHECKPOINT} is not a neural model's checkpoint")
    path = out / "latent.npy"
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist: finish training first")
    outputs = ["embedding.png", "states.npy", "analysis.json"]
    outputs += [f"state_{k}.mrc" for k in range(1, states + 1)]
    for name in outputs:
        check_output_path(out / name, force)
    latent = torch.from_numpy(np.load(path))
    clusters = kmeans(latent, states)
    centred = latent - latent.mean(0)
    if latent.shape[1] > 2:  # PCA to 2-D
        _, _, vt = torch.linalg.svd(centred, full_matrices=False)
        centred = centred @ vt[:2].T
    labels = clusters.labels.numpy()
    plot_embedding(centred.numpy(), labels, model.losses, out / "embedding.png",
                   f"{len(latent)} particles, {states} states", force)  # fmt: skip
    write_array(out / "states.npy", labels, force)
    for k, centre in enumerate(clusters.centres, 1):
        write_mrc(out / f"state_{k}.mrc", model.volume(centre).cpu().float().numpy(),
                  model.voxel, force=force)  # fmt: skip
    summary = {"states": states, "particles": np.bincount(labels, minlength=states).tolist(),
               "centres": clusters.centres.tolist(), "output": str(out)}  # fmt: skip
    write_json(out / "analysis.json", summary, force)
    return summary
