"""Simulated particle datasets with ground truth, streamed to disk.

For each particle: a pose (``poses.sample_poses``), an origin ``~ N(0, shift_sigma)`` Angstrom
per axis (RELION 3.1 semantics: the image is the projection translated by ``-origin``), a CTF
(mean defocus uniform in the range, astigmatism ``|dU - dV|`` uniform up to the given value, a
uniform angle), then noise: white Gaussian at ``snr`` (docs/conventions.md: per image, signal
variance over noise variance over the whole box) or counting noise at ``dose`` (the image is
scaled to an rms contrast of ``contrast_rms``, then Poisson counts of ``dose * pixel^2 (1 + c)``,
stored minus their mean so that images stay protein-positive around zero).

Outputs in ``out_dir``: ``particles_NNN.mrcs`` stacks of at most ``shard_size`` images,
``particles.star`` (RELION 3.1, optics table; the exact poses, origins and CTFs: the ground
truth), ``particles.cs`` (cryoSPARC), and with ``write_clean`` the noise-free images
``clean_NNN.mrcs``. Images are made in batches, and each particle's noise depends only on
``(seed, particle index)``, so the dataset is the same for any batch or shard size, order of
work or device (up to rounding across devices); memory is one batch.
"""

import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cryomath.devices import Staging, device_name, resolve_device
from cryomath.errors import InvalidInputError
from cryomath.imaging import ParticleBatch, iter_batches, predict_images
from cryomath.io import CTFParameters, MRCStackWriter, ParticleTable, write_cryosparc
from cryomath.io.atomic import atomic_output, check_output_path, writable_directory
from cryomath.io.relion import write_relion_star
from cryomath.noise import add_white_noise, shot_noise
from cryomath.projection import prepare_volume
from cryomath.simulate.poses import sample_poses


@dataclass
class SimulationSettings:
    """Everything that defines a simulated dataset (units in the names)."""

    n_particles: int
    pixel_size_angstrom: float
    seed: int = 0
    poses: str = "uniform"
    grid_order: int = 2
    preferred_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    preferred_fraction: float = 0.5
    preferred_kappa: float = 20.0
    shift_sigma_angstrom: float = 0.0
    defocus_min_angstrom: float = 10000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_angstrom: float = 500.0
    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.1
    bfactor_angstrom2: float = 0.0
    ctf: bool = True
    snr: float | None = 0.1
    dose_e_per_a2: float | None = None
    contrast_rms: float = 0.1
    pad_factor: float = 2.0
    shard_size: int = 10240

    def check(self) -> None:
        if self.n_particles < 1:
            raise InvalidInputError("need at least one particle")
        if self.snr is not None and self.dose_e_per_a2 is not None:
            raise InvalidInputError("give an SNR or a dose, not both")
        if self.shard_size < 1:
            raise InvalidInputError("shard size must be at least 1")
        if not 0 < self.defocus_min_angstrom <= self.defocus_max_angstrom:
            raise InvalidInputError("defocus range must be 0 < min <= max (Angstrom)")


def _parameters(s: SimulationSettings, box: int) -> ParticleTable:
    """The ground truth for all particles (small: a few numbers per particle)."""
    g = torch.Generator().manual_seed(s.seed)
    n = s.n_particles
    poses = sample_poses(
        n, s.poses, g, s.grid_order, s.preferred_direction, s.preferred_fraction, s.preferred_kappa
    )
    origins = torch.randn(n, 2, generator=g, dtype=torch.float64) * s.shift_sigma_angstrom
    mean_df = s.defocus_min_angstrom + torch.rand(n, generator=g, dtype=torch.float64) * (
        s.defocus_max_angstrom - s.defocus_min_angstrom
    )
    astig = torch.rand(n, generator=g, dtype=torch.float64) * s.astigmatism_angstrom
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 180 - 90
    subset = torch.randint(1, 3, (n,), generator=g)
    ctf = CTFParameters(
        defocus_u_angstrom=(mean_df + astig / 2).numpy(),
        defocus_v_angstrom=(mean_df - astig / 2).numpy(),
        defocus_angle_degrees=angle.numpy(),
        voltage_kv=np.full(n, s.voltage_kv),
        spherical_aberration_mm=np.full(n, s.spherical_aberration_mm),
        amplitude_contrast=np.full(n, s.amplitude_contrast),
        phase_shift_degrees=np.zeros(n),
        bfactor_angstrom2=np.full(n, s.bfactor_angstrom2),
        scale=np.ones(n),
    )
    index = np.arange(n)
    return ParticleTable(
        n=n,
        rotations=poses.numpy(),
        origins_angstrom=origins.numpy(),
        ctf=ctf,
        pixel_size_angstrom=s.pixel_size_angstrom,
        image_size=box,
        image_paths=np.array(
            [f"particles_{i // s.shard_size:03d}.mrcs" for i in index], dtype=object
        ),
        image_indices=index % s.shard_size,
        optics_group=1,
        random_subset=subset.numpy(),
    )


def _generators(seed: int, start: int, stop: int) -> list[torch.Generator]:
    """One random stream per particle, from ``(seed, particle index)``: a particle's noise is
    the same whatever the batch, the shard, the order of work or the device."""
    return [torch.Generator().manual_seed((seed % 2**32) << 32 | i) for i in range(start, stop)]


def _images(spectrum, batch: ParticleBatch, s: SimulationSettings, first: int):
    """Clean and noisy images (float64, on the batch's device) of a ``batch`` whose rows are
    particles ``first + batch.indices``."""
    clean = predict_images(spectrum, batch)
    start = first + int(batch.indices[0])
    generators = _generators(s.seed, start, start + len(batch))
    if s.snr is not None:
        noisy = add_white_noise(clean, s.snr, generator=generators)
    elif s.dose_e_per_a2 is not None:
        rms = clean.flatten(-2).std(-1)[..., None, None].clamp(min=1e-30)
        contrast = clean / rms * s.contrast_rms
        counts = shot_noise(contrast, s.dose_e_per_a2, s.pixel_size_angstrom, generator=generators)
        noisy = counts - s.dose_e_per_a2 * s.pixel_size_angstrom**2
    else:
        noisy = clean
    return clean, noisy


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
) -> int:
    """Write shard ``shard`` (``particles_NNN.mrcs``, and ``clean_NNN.mrcs``): the particles of
    ``table``, which start at particle ``first``, made in batches of ``batch_size`` on the
    spectrum's device; each file appears only when complete. Returns the number of images."""
    box = spectrum.n
    staging = Staging(spectrum.data.device)
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
            clean, noisy = _images(spectrum, batch, settings, first)
            writers["particles"].write(staging.to_host(noisy))
            if write_clean:
                writers["clean"].write(staging.to_host(clean))
            if progress is not None:
                progress(len(batch))
    return table.n


def _shard_task(volume, table, settings, first, shard, out, write_clean, force, batch_size,
                device) -> int:  # fmt: skip
    """One shard on a worker: the volume is prepared there (one FFT per shard). Idempotent: a
    task rerun after its worker died once the files were published finds them complete (the
    driver removed any older ones before the run) and leaves them."""
    if all(path.exists() for path in _shard_paths(out, shard, write_clean).values()):
        return table.n
    volume = volume.to(resolve_device(device), torch.float64)
    spectrum = prepare_volume(
        volume, settings.pad_factor, voxel_size_angstrom=settings.pixel_size_angstrom
    )
    return write_shard(
        spectrum, table, settings, first, shard, out, write_clean, force, batch_size=batch_size
    )


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
    """Simulate ``settings.n_particles`` images of ``volume (n, n, n)`` into ``out_dir``;
    returns a summary. ``progress(k)`` is called as images are done. Images are made in
    batches of ``batch_size`` on ``device`` (default: the CPU; with a ``client``, on each
    worker, which must have it); the output does not depend on either, apart from
    floating-point rounding across devices.

    ``client``: a ``dask.distributed.Client``: one task per shard (retried by Dask if a worker
    dies), the STAR and ``.cs`` files written here at the end; the files are bit-identical to a
    single-process run. ``resume``: continue an interrupted run into the same folder: shards
    already there (complete by construction) are kept, the rest are made; the settings and the
    volume must be those recorded in ``simulation.json``."""
    settings.check()
    if batch_size < 1:
        raise InvalidInputError("batch size must be at least 1")
    device = device_name(device, client)
    out = Path(out_dir)
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
        for path in [*(p for paths in shards for p in paths), out / "particles.star",
                     out / "particles.cs", out / "simulation.json"]:  # fmt: skip
            check_output_path(path, force)
        todo = list(range(n_shards))
    writable_directory(out)
    if force and not resume:  # so that any shard file present later is from this run
        for i in todo:
            for path in shards[i]:
                path.unlink(missing_ok=True)
    if not resume:
        with atomic_output(out / "simulation.json", force) as tmp:
            tmp.write_text(json.dumps(manifest))
    table = _parameters(settings, box)

    def part(i):
        first = i * settings.shard_size
        return first, table.subset(np.arange(first, min(first + settings.shard_size, table.n)))

    overwrite = force or resume  # resumed shards may have left no file, or a stale temporary
    if client is None:
        spectrum = prepare_volume(
            volume.to(device, torch.float64), settings.pad_factor,
            voxel_size_angstrom=settings.pixel_size_angstrom,
        )  # fmt: skip
        for i in todo:
            first, sub = part(i)
            write_shard(
                spectrum, sub, settings, first, i, out, write_clean, overwrite, progress, batch_size
            )
    else:
        from dask.distributed import as_completed

        # on every worker, so that a worker that dies does not take the only copy with it
        scattered = client.scatter(volume.detach().cpu(), broadcast=True)
        futures = []
        for i in todo:
            first, sub = part(i)
            futures.append(client.submit(
                _shard_task, scattered, sub, settings, first, i, out, write_clean, overwrite,
                batch_size, device, retries=2, pure=False,
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


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries of shard files left by a killed worker or an interrupted run."""
    for stale in out.glob(".*_[0-9][0-9][0-9].mrcs.*.tmp"):
        stale.unlink(missing_ok=True)
