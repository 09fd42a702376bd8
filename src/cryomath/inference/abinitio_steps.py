"""Ab initio's updates of its maps (``inference.abinitio`` runs them): the grid's momentum
step, the neural field's start and passes, a reconstruction at given poses (the random-pose
start and the restart of an inactive class), the hierarchical search's best-pose sums (engine
``hps``), and the constraint every map meets (a soft sphere, non-negative). ``state`` is an
``AbInitioState``."""

import math
from dataclasses import replace

import numpy as np
import torch

from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import shell_index
from cryomath.imaging import FourierAccumulator, insert_spectra, iter_batches
from cryomath.inference.expectation import PassSums, particle_radius_px
from cryomath.inference.hierarchical import HierarchicalSearch, hierarchical_pose_search
from cryomath.inference.neural_volume import NeuralVolume
from cryomath.inference.refine_rules import shell_of
from cryomath.projection import prepare_volume
from cryomath.reconstruction.direct import (
    invert,
    padded_spectrum_of_volume,
    volume_from_padded_spectrum,
)
from cryomath.resolution import low_pass


def grid_step(state, k: int, acc: FourierAccumulator, settings, radius) -> float:
    """The momentum step of class ``k`` (module docstring); returns ``|dV| / |V|``."""
    device = acc.sums.device
    current = state.maps[k].to(device, torch.float64)
    spectrum = padded_spectrum_of_volume(current, acc.n_pad)
    weights = acc.weights
    curvature = state.curvature[k].to(device)
    first = not bool(curvature.any())
    curvature = weights if first else 0.8 * curvature + 0.2 * weights
    regulariser = 0.01 * float(curvature.mean())
    gradient = (acc.data - weights * spectrum) / (curvature + regulariser)
    step = settings.momentum * state.step[k].to(device) + (
        1 - settings.momentum) * settings.learning_rate * gradient  # fmt: skip
    updated = constrained(volume_from_padded_spectrum(spectrum + step, acc.n), radius)
    change = float((updated - current).norm() / current.norm().clamp(min=1e-30))
    state.maps[k] = updated.to(state.maps.dtype).cpu()
    state.step[k], state.curvature[k] = step.cpu(), curvature.cpu()
    return change


def reconstruction(table, rows, rotations: np.ndarray, shifts_px: np.ndarray, settings,
                    resolution_angstrom: float, device) -> torch.Tensor:  # fmt: skip
    """The particles ``rows`` reconstructed at ``rotations (N, 3, 3)`` and ``shifts_px (N, 2)``
    (indexed by table row), low-passed to ``resolution_angstrom``, masked, non-negative."""
    n = int(np.max(table.image_size))
    voxel = float(np.asarray(table.pixel_size_angstrom).reshape(-1)[0])
    acc = FourierAccumulator(n, 2.0, torch.float64, device, voxel)
    for batch in iter_batches(table, settings.batch_size, device, torch.float64, rows=rows):
        index = batch.indices.cpu().numpy()
        insert_spectra(acc, batch.spectra, batch, torch.as_tensor(rotations[index], device=device),
                       torch.as_tensor(shifts_px[index], device=device))  # fmt: skip
    volume = invert(acc, prior_weight=float(acc.weights.mean()) * 0.01)
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel)
    return constrained(low_pass(volume, resolution_angstrom, voxel), radius)


def neural_start(table, maps, settings, dtype, device) -> list[NeuralVolume]:
    """Each class's field fitted to its start map up to the initial band, the fields' scale
    the first minibatch's in-band spectral RMS."""
    n, voxel = maps.shape[-1], float(np.asarray(table.pixel_size_angstrom).reshape(-1)[0])
    first = next(iter_batches(table, settings.initial_batch, device, dtype, rows=np.arange(
        settings.initial_batch)))  # fmt: skip
    inside = shell_index((n, n), device=device) <= shell_of(settings.final_resolution_angstrom,
                                                            n, voxel)  # fmt: skip
    scale = float(first.spectra[:, inside].abs().pow(2).mean().sqrt())
    shell = shell_of(settings.initial_resolution_angstrom, n, voxel)
    fields = []
    for k, start in enumerate(maps):
        volume = NeuralVolume(n, voxel, scale, settings.neural_width, 3,
                              settings.neural_learning_rate, settings.seed * 1000 + k, dtype,
                              device)  # fmt: skip
        volume.fit_volume(start, shell, 200)
        fields.append(volume)
    return fields


def neural_step(table, rows, state, k, settings, shell, radius, dtype, device) -> float:
    """Class ``k``'s field after ``neural_steps`` passes over the images ``rows`` (this
    minibatch's and the replayed ones') of that class at their most probable poses; its map
    rendered (masked, non-negative). Returns ``|dV| / |V|``."""
    mine = rows[state.particles.classes[rows] == k]
    if len(mine) == 0:
        return 0.0
    batches = []
    for batch in iter_batches(table, settings.batch_size, device, dtype, rows=mine):
        index = batch.indices.cpu().numpy()
        batches.append(replace(batch, rotations=torch.as_tensor(
            state.particles.rotations[index], dtype=dtype, device=batch.device),
            shifts_px=torch.as_tensor(state.particles.shifts_px[index], dtype=dtype,
                                      device=batch.device)))  # fmt: skip
    state.fields[k].fit_images(batches, state.noise, shell, settings.neural_steps)
    current = state.maps[k].double()
    updated = constrained(state.fields[k].volume(shell), radius).cpu()
    state.maps[k] = updated.to(state.maps.dtype)
    return float((updated - current).norm() / current.norm().clamp(min=1e-30))


def constrained(volume: torch.Tensor, radius_px: float) -> torch.Tensor:
    """``volume`` inside a soft sphere of ``radius_px`` and non-negative."""
    n = volume.shape[-1]
    mask = spherical_mask((n, n, n), radius_px, 3.0, dtype=volume.dtype, device=volume.device)
    return (volume * mask).clamp(min=0)


def best_pose_sums(table, rows, state, settings, shell, dtype, device, progress) -> PassSums:
    """The minibatch inserted at each image's best pose by the hierarchical search against
    its best class (class 1 when K = 1)."""
    n = state.maps.shape[-1]
    sums = PassSums({})
    base = max(2, math.ceil(shell / 2))
    search = HierarchicalSearch(base_order=1, levels=2, keep=settings.hps_keep,
                                offset_range_px=settings.offset_range_px,
                                offset_step_px=settings.offset_step_px, base_shell=base,
                                final_shell=shell)  # fmt: skip
    voxel = state.voxel_size_angstrom
    spectra = [prepare_volume(m.to(device, dtype), 2.0, voxel_size_angstrom=voxel)
               for m in state.maps]  # fmt: skip
    for batch in iter_batches(table, settings.batch_size, device, dtype, rows=rows):
        found = [hierarchical_pose_search(batch, s, state.noise, search) for s in spectra]
        likelihoods = torch.stack([f.log_likelihood for f in found])  # (K, B)
        best_class = likelihoods.argmax(0)
        pick = torch.arange(len(batch), device=batch.device)
        rotations = torch.stack([f.rotations for f in found])[best_class, pick]
        shifts = torch.stack([f.shifts_px for f in found])[best_class, pick]
        index = batch.indices.cpu().numpy()
        state.particles.rotations[index] = rotations.double().cpu().numpy()
        state.particles.shifts_px[index] = shifts.double().cpu().numpy()
        state.particles.classes[index] = best_class.cpu().numpy()
        state.particles.log_likelihood[index] = likelihoods.max(0).values.double().cpu().numpy()
        state.particles.max_probability[index] = 1.0
        for k in range(len(spectra)):
            chosen = (best_class == k).nonzero()[:, 0]
            if len(chosen) == 0:
                continue
            part = batch.subset(chosen)
            insert_spectra(sums.accumulator((k, 1), n, voxel, dtype, device), part.spectra, part,
                           rotations[chosen], shifts[chosen])  # fmt: skip
        if progress is not None:
            progress(len(batch))
    return sums
