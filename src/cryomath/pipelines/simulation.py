"""Simulated datasets on disk: shards of stacks, the ground-truth STAR and ``.cs``, resume, and
one Dask task per shard.

Outputs in ``out_dir``: ``particles_NNN.mrcs`` stacks of at most ``shard_size`` images,
``particles.star`` (RELION 3.1, optics table; the exact poses, origins and CTFs: the ground
truth), ``particles.cs`` (cryoSPARC), ``simulation.json`` (the settings and the volume's hash,
for ``resume``), and with ``write_clean`` the noise-free images ``clean_NNN.mrcs``. Images are
made in batches (``simulate.simulate_images``); memory is one batch.

Several volumes ``(K, n, n, n)`` make a heterogeneous dataset (``simulate.conformations``):
each particle's state (its nearest volume, 1-based) is its ``rlnClassNumber`` in the STAR
file, and ``conformations.json`` holds the states, and for a trajectory each particle's
coordinate in [0, 1].
"""

import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cryomath.devices import Staging, check_memory, device_name, resolve_device
from cryomath.errors import InvalidInputError, OutputExistsError
from cryomath.imaging import iter_batches
from cryomath.io import MRCStackWriter, ParticleTable, write_cryosparc
from cryomath.io.atomic import (
    atomic_output,
    check_output_path,
    published_at_once,
    writable_directory,
)
from cryomath.io.relion import write_relion_star
from cryomath.projection import prepare_volume
from cryomath.simulate import SimulationSettings, ground_truth, simulate_images
from cryomath.simulate.conformations import Conformations, sample_conformations


def _shard_paths(out: Path, shard: int, write_clean: bool) -> dict[str, Path]:
    """The stack files of one shard: ``particles_NNN.mrcs`` (and ``clean_NNN.mrcs``)."""
    kinds = ["particles", "clean"] if write_clean else ["particles"]
    return {kind: out / f"{kind}_{shard:03d}.mrcs" for kind in kinds}


def write_shard(
    spectrum,
    table: ParticleTable,
    settings: SimulationSettings,
    first: int,
    shard: int,
    out: Path,
    write_clean: bool = False,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 256,
    conformations: Conformations | None = None,
) -> int:
    """Write shard ``shard`` (``particles_NNN.mrcs``, and ``clean_NNN.mrcs``): the particles of
    ``table``, which start at particle ``first``, made in batches of ``batch_size`` on the
    spectrum's device; each file appears only when complete. Returns the number of images.
    ``conformations`` (the shard's rows): ``spectrum`` is the list of the volumes' spectra."""
    first_spectrum = spectrum if conformations is None else spectrum[0]
    box = first_spectrum.n
    staging = Staging(first_spectrum.data.device)
    with ExitStack() as stack:
        writers = {
            kind: stack.enter_context(
                MRCStackWriter(path, table.n, (box, box), settings.pixel_size_angstrom, force=force)
            )
            for kind, path in _shard_paths(out, shard, write_clean).items()
        }
        batches = iter_batches(table, batch_size, staging.device, torch.float64,
                               read_images=False, use_ctf=settings.ctf)  # fmt: skip
        for batch in batches:
            rows = None if conformations is None else conformations.subset(
                batch.indices.cpu().numpy())  # fmt: skip
            clean, noisy = simulate_images(spectrum, batch, settings, first, rows)
            writers["particles"].write(staging.to_host(noisy))
            if write_clean:
                writers["clean"].write(staging.to_host(clean))
            if progress is not None:
                progress(len(batch))
    return table.n


def _spectra(volumes: torch.Tensor, settings: SimulationSettings, device):
    """The prepared spectrum of one volume, or the list of several's."""
    volumes = volumes.to(resolve_device(device), torch.float64)
    spectra = [prepare_volume(v, settings.pad_factor,
                              voxel_size_angstrom=settings.pixel_size_angstrom)
               for v in volumes.reshape(-1, *volumes.shape[-3:])]  # fmt: skip
    return spectra[0] if volumes.ndim == 3 else spectra


def _shard_task(volume, table, settings, first, shard, out, write_clean, force, batch_size,
                device, conformations=None) -> int:  # fmt: skip
    """One shard on a worker: the volume is prepared there (one FFT per shard). Idempotent: a
    task rerun after its worker died once the files were published finds them complete (the
    driver removed any older ones before the run) and leaves them."""
    if all(path.exists() for path in _shard_paths(out, shard, write_clean).values()):
        return table.n
    return write_shard(_spectra(volume, settings, device), table, settings, first, shard, out,
                       write_clean, force, batch_size=batch_size,
                       conformations=conformations)  # fmt: skip


def _manifest(volume: torch.Tensor, settings: SimulationSettings, write_clean: bool) -> dict:
    digest = hashlib.sha256(volume.detach().cpu().double().contiguous().numpy().tobytes())
    record = {
        "settings": asdict(settings),
        "write_clean": write_clean,
        "volume_sha256": digest.hexdigest(),
    }
    return json.loads(json.dumps(record))  # as it reads back (tuples become lists)


def simulate_dataset(
    volume: torch.Tensor,
    out_dir: str | Path,
    settings: SimulationSettings,
    *,
    write_clean: bool = False,
    force: bool = False,
    resume: bool = False,
    client=None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict:
    """Simulate ``settings.n_particles`` images of ``volume (n, n, n)`` (or of several,
    ``(K, n, n, n)``: module docstring) into ``out_dir``; returns a summary. ``progress(k)``
    is called as images are done. Images are made in batches of ``batch_size`` on ``device``
    (default: the CPU; with a ``client``, on each worker, which must have it); the output does
    not depend on either, apart from floating-point rounding across devices.

    ``client``: a ``dask.distributed.Client``: one task per shard (retried by Dask if a worker
    dies), the STAR and ``.cs`` files written here at the end; the files are bit-identical to a
    single-process run. ``resume``: continue an interrupted run into the same folder: shards
    already there (complete by construction) are kept, the rest are made; the settings and the
    volume must be those recorded in ``simulation.json``."""
    settings.check()
    if batch_size < 1:
        raise InvalidInputError("batch size must be at least 1")
    n = volume.shape[-1]
    if volume.ndim not in (3, 4) or tuple(volume.shape[-3:]) != (n, n, n) or n < 2:
        raise InvalidInputError(
            f"the volume must be cubic (n, n, n), or several (K, n, n, n); got "
            f"{tuple(volume.shape)}"
        )
    if volume.ndim == 4 and len(volume) == 1:
        volume = volume[0]
    if volume.ndim == 3 and (settings.state_weights is not None or settings.trajectory):
        raise InvalidInputError("state weights and a trajectory need several volumes")
    if not bool(torch.isfinite(volume).all()):
        raise InvalidInputError("the volume contains NaN or inf")
    device = device_name(device, client)
    # the ground truth (a few hundred bytes a particle) and one batch of images being made
    check_memory(400 * settings.n_particles, f"{settings.n_particles} particles' ground truth")
    check_memory(64 * n * n * min(batch_size, settings.n_particles), "a batch of images")
    conformations = None  # drawn (and their weights checked) before anything is written
    if volume.ndim == 4:
        conformations = sample_conformations(
            settings.n_particles, len(volume), settings.seed, settings.state_weights,
            settings.trajectory,
        )  # fmt: skip
    with published_at_once():  # shards appear one by one: an interrupted run can resume
        return _simulate(volume, Path(out_dir), settings, write_clean, force, resume, client,
                         progress, batch_size, device, conformations)  # fmt: skip


def _simulate(volume, out, settings, write_clean, force, resume, client, progress, batch_size,
              device, conformations) -> dict:  # fmt: skip
    box = volume.shape[-1]
    n_shards = (settings.n_particles + settings.shard_size - 1) // settings.shard_size
    shards = [list(_shard_paths(out, i, write_clean).values()) for i in range(n_shards)]
    manifest = _manifest(volume, settings, write_clean)
    if resume:
        recorded = out / "simulation.json"
        if not recorded.exists() or json.loads(recorded.read_text()) != manifest:
            raise InvalidInputError(
                f"cannot resume in {out}: no simulation.json there, or it records other settings "
                "or another volume"
            )
        todo = [i for i in range(n_shards) if not all(p.exists() for p in shards[i])]
    else:
        if (out / "simulation.json").exists() and not force:
            raise OutputExistsError(
                f"{out} holds a simulation already (an interrupted one?): resume=True "
                "(--resume) finishes it, force=True (--force) starts again"
            )
        for path in [*(p for paths in shards for p in paths), out / "particles.star",
                     out / "particles.cs", out / "simulation.json"]:  # fmt: skip
            check_output_path(path, force)
        todo = list(range(n_shards))
    writable_directory(out)
    if force and not resume:  # so that any shard file present later is from this run
        ours = {p.name for paths in shards for p in paths}
        for path in [*out.glob("particles_*.mrcs"), *out.glob("clean_*.mrcs")]:
            if path.name not in ours and path.stem.split("_")[-1].isdigit():
                path.unlink()  # a shard of an earlier, larger run
        for i in todo:
            for path in shards[i]:
                path.unlink(missing_ok=True)
    if not resume:
        with atomic_output(out / "simulation.json", force) as tmp:
            tmp.write_text(json.dumps(manifest, allow_nan=False))
    table = ground_truth(settings, box)
    if conformations is not None:
        table.extra = table.extra.assign(rlnClassNumber=conformations.nearest_state() + 1)
        if not (resume and (out / "conformations.json").exists()):
            _write_conformations(out / "conformations.json", conformations, len(volume), settings,
                                 force)  # fmt: skip

    def part(i):
        first = i * settings.shard_size
        rows = np.arange(first, min(first + settings.shard_size, table.n))
        return first, table.subset(rows), None if conformations is None else conformations.subset(
            rows)  # fmt: skip

    overwrite = force or resume  # resumed shards may have left no file, or a stale temporary
    if client is None:
        spectrum = _spectra(volume, settings, device)
        for i in todo:
            first, sub, states = part(i)
            write_shard(spectrum, sub, settings, first, i, out, write_clean, overwrite, progress,
                        batch_size, states)  # fmt: skip
    else:
        from dask.distributed import as_completed

        # on every worker, so that a worker that dies does not take the only copy with it
        scattered = client.scatter(volume.detach().cpu(), broadcast=True)
        futures = []
        for i in todo:
            first, sub, states = part(i)
            futures.append(client.submit(
                _shard_task, scattered, sub, settings, first, i, out, write_clean, overwrite,
                batch_size, device, states, retries=2, pure=False,
            ))  # fmt: skip
        for future in as_completed(futures):
            done = future.result()
            if progress is not None:
                progress(done)
    _remove_stale_temporaries(out)
    table.root = out
    for name, writer in (("particles.star", write_relion_star), ("particles.cs", write_cryosparc)):
        if not (resume and (out / name).exists()):
            writer(table, out / name, force=force)
    names = [paths[k].name for k in range(len(shards[0])) for paths in shards]
    return {
        "particles": settings.n_particles,
        "box": box,
        "pixel_size_angstrom": settings.pixel_size_angstrom,
        "stacks": names,
        "star": str(out / "particles.star"),
        "cs": str(out / "particles.cs"),
        "seed": settings.seed,
        "resumed_shards": n_shards - len(todo) if resume else 0,
    }


def _write_conformations(path: Path, conformations: Conformations, volumes: int, settings,
                         force) -> None:  # fmt: skip
    """``conformations.json``: the kind, each particle's state (0-based: the volume, or the
    frame before it on a trajectory) and trajectory coordinate."""
    record = {
        "kind": "trajectory" if settings.trajectory else "discrete",
        "volumes": volumes,
        "state_weights": settings.state_weights,
        "state": conformations.state.tolist(),
        "coordinate": None if conformations.coordinate is None
        else conformations.coordinate.tolist(),
    }  # fmt: skip
    with atomic_output(path, force) as tmp:
        tmp.write_text(json.dumps(record))


def read_conformations(folder: str | Path) -> Conformations:
    """The true conformations of a simulated dataset (``conformations.json`` in ``folder``)."""
    path = Path(folder) / "conformations.json"
    if not path.exists():
        raise InvalidInputError(f"{path} not found: not a heterogeneous simulated dataset")
    record = json.loads(path.read_text())
    state = np.asarray(record["state"], dtype=np.int64)
    coordinate = record["coordinate"]
    if coordinate is None:
        return Conformations(state, np.zeros(len(state)))
    coordinate = np.asarray(coordinate, dtype=np.float64)
    return Conformations(state, coordinate * (record["volumes"] - 1) - state, coordinate)


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries of shard files left by a killed worker or an interrupted run."""
    for stale in out.glob(".*_[0-9][0-9][0-9].mrcs.*.tmp"):
        stale.unlink(missing_ok=True)
