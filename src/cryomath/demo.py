"""``cryomath demo``: the forward and the inverse problem on a bundled model, with figures.

1. Truth: the bundled 6VYB N-domain (``data/README.md``) rendered with Peng (1996) scattering
   factors and its B-factors, 1.5 A voxels (``atoms.map_from_model``).
2. Data: ``n_particles`` images with uniform poses, shifts (sd 2 A), a CTF (300 kV, defocus
   1-2.5 um, an envelope of B = ``bfactor_angstrom2``) and white noise at ``snr``, written as
   stacks, a RELION 3.1 STAR and a cryoSPARC ``.cs`` (``pipelines.simulate_dataset``).
3. Reconstruction from the STAR file: half maps and the full map by direct Fourier inversion
   (``pipelines.reconstruct_particles``); FSC between the halves (resolution at 0.143) and
   between the full map and the truth (at 0.5).
4. The reconstruction aligned back onto the truth (``fitting.align_maps``): the fit should be
   the identity.
5. ``report.md`` with the numbers and PNG figures (projections, CTF, orientation coverage, FSC,
   alignment overlay), and ``summary.json``.
"""

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

BUNDLED_MODEL = Path(__file__).parent / "data" / "6vyb_ndom.pdb.gz"
FIGURES = ("projections.png", "ctf.png", "directions.png", "fsc.png", "overlay.png")
MAPS = ("truth.mrc", "half1.mrc", "half2.mrc", "map.mrc")


def run_demo(
    out_dir: str | Path,
    n_particles: int = 10000,
    snr: float = 0.05,
    bfactor_angstrom2: float = 100.0,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Run the demo into ``out_dir``, computing on ``device``; returns the summary.
    ``progress(stage, done, total)`` is called as work advances. The simulated particles go
    to ``out_dir/particles``, removed again if the demo fails or is interrupted."""
    from cryomath.io.atomic import output_set, removed_on_failure

    with output_set(), removed_on_failure(Path(out_dir) / "particles"):
        return _run_demo(out_dir, n_particles, snr, bfactor_angstrom2, seed, force, progress,
                         device)  # fmt: skip


def _run_demo(out_dir, n_particles, snr, bfactor_angstrom2, seed, force, progress, device):
    from cryomath import so3
    from cryomath.atoms import map_from_model, read_atoms
    from cryomath.devices import resolve_device
    from cryomath.fitting import align_maps
    from cryomath.fitting.refine import transform_map
    from cryomath.io import read_particles, write_mrc
    from cryomath.io.atomic import atomic_output, check_output_path
    from cryomath.io.results import write_json
    from cryomath.pipelines import reconstruct_particles, simulate_dataset
    from cryomath.resolution import fourier_shell_correlation, resolution_angstrom
    from cryomath.simulate import SimulationSettings

    device = resolve_device(device)
    out = Path(out_dir)
    for name in (*FIGURES, *MAPS, "report.md", "summary.json"):
        check_output_path(out / name, force)
    report = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    voxel = 1.5
    report("truth map", 0, 1)
    truth, origin = map_from_model(read_atoms(BUNDLED_MODEL), voxel, None, margin_angstrom=12.0)
    report("truth map", 1, 1)
    settings = SimulationSettings(
        n_particles=n_particles, pixel_size_angstrom=voxel, seed=seed, snr=snr,
        shift_sigma_angstrom=2.0, defocus_min_angstrom=10000.0, defocus_max_angstrom=25000.0,
        bfactor_angstrom2=bfactor_angstrom2,
    )  # fmt: skip
    done = [0]

    def advance(stage):
        def step(k):
            done[0] += k
            report(stage, done[0], n_particles)

        return step

    truth = truth.to(device)
    simulate_dataset(
        truth, out / "particles", settings, force=force, progress=advance("simulate"),
        device=device,
    )  # fmt: skip
    table = read_particles(out / "particles" / "particles.star")
    done[0] = 0
    result = reconstruct_particles(table, progress=advance("reconstruct"), device=device)
    pixel = result.pixel_size_angstrom
    half_curve = result.fsc.to("cpu")
    truth_curve = fourier_shell_correlation(result.full, truth, pixel).to("cpu")
    report("align", 0, 1)
    aligned = time.perf_counter()
    fit = align_maps(truth, voxel, origin, result.full, voxel, origin, top=3)[0]
    aligned = time.perf_counter() - aligned
    report("align", 1, 1)
    # the rest (files, figures) on the host
    fit = replace(fit, rotation_matrix=fit.rotation_matrix.cpu(),
                  translation_angstrom=fit.translation_angstrom.cpu())  # fmt: skip
    truth = truth.cpu()
    result = result.to("cpu")
    angle = math.degrees(float(so3.geodesic_distance(fit.rotation_matrix, torch.eye(3).double())))
    # how far the fit moves the box centre (T alone also holds R's turn about the model origin)
    centre = torch.as_tensor(origin + (truth.shape[-1] // 2) * voxel)
    shift = float((fit.rotation_matrix @ centre + fit.translation_angstrom - centre).norm())

    for name, volume in zip(MAPS, (truth, result.half1, result.half2, result.full),
                            strict=True):  # fmt: skip
        write_mrc(out / name, volume.float().numpy(), voxel, tuple(origin), force=force)
    report("figures", 0, 1)
    moved = transform_map(result.full, voxel, origin, fit.rotation_matrix,
                          fit.translation_angstrom, truth.shape, voxel, origin)  # fmt: skip
    _figures(out, truth, moved, half_curve, truth_curve, table, settings, force)
    report("figures", 1, 1)
    summary = {
        "model": "6VYB N-terminal domain (bundled)",
        "particles": n_particles,
        "box": int(truth.shape[-1]),
        "pixel_size_angstrom": voxel,
        "snr": snr,
        "ctf_bfactor_angstrom2": bfactor_angstrom2,
        "seed": seed,
        "resolution_fsc_0143_angstrom": resolution_angstrom(half_curve, 0.143),
        "resolution_vs_truth_fsc_05_angstrom": resolution_angstrom(truth_curve, 0.5),
        "alignment_error_degrees": angle,
        "alignment_shift_angstrom": shift,
        "alignment_correlation": fit.correlation,
        "alignment_normalized_z_score": fit.normalized_z_score,
        "alignment_seconds": aligned,
        "total_seconds": time.perf_counter() - started,
        "output": str(out),
    }
    with atomic_output(out / "report.md", force) as tmp:
        tmp.write_text(_report(summary))
    write_json(out / "summary.json", summary, force)
    return summary


def _figures(out, truth, moved, half_curve, truth_curve, table, settings, force):
    from cryomath.ctf import compute_ctf, ctf_aliasing_frequency
    from cryomath.fourier.grids import fftfreq_grid
    from cryomath.imaging import iter_batches, predict_images
    from cryomath.plots import plot_ctf, plot_directions, plot_fsc, plot_images, plot_overlay
    from cryomath.projection import prepare_volume
    from cryomath.so3 import relion_euler_from_matrix

    pixel = settings.pixel_size_angstrom
    first = table.subset(np.arange(6))
    with_ctf = next(iter_batches(first, 6))
    without_ctf = replace(with_ctf, ctf=None)  # the same particles: no second read
    ctf = with_ctf.ctf
    spectrum = prepare_volume(truth, settings.pad_factor, voxel_size_angstrom=pixel)
    plot_images(
        {
            "projection": predict_images(spectrum, without_ctf).numpy(),
            "with CTF": predict_images(spectrum, with_ctf).numpy(),
            f"with CTF and noise (SNR {settings.snr:g})": with_ctf.images().float().numpy(),
        },
        out / "projections.png", "the first six simulated particles", force,
    )  # fmt: skip
    n = truth.shape[-1]
    image = compute_ctf(ctf.subset(torch.tensor([True] + [False] * 5)), (n, n), pixel,
                        rfft=False, fftshift=True)[0]  # fmt: skip
    k = fftfreq_grid((n, n), rfft=False, fftshift=True, voxel_size_angstrom=pixel)
    row = image[n // 2, n // 2 :].numpy()
    title = (f"particle 1: defocus {float(ctf.defocus_u_angstrom[0]) / 1e4:.2f} um; rings alias "
             f"beyond {float(ctf_aliasing_frequency(ctf, n, pixel)[0]):.3f} 1/A")  # fmt: skip
    plot_ctf(image.numpy(), k[n // 2, n // 2 :, 0].numpy(), row, out / "ctf.png", title, force)
    angles = relion_euler_from_matrix(torch.from_numpy(table.rotations)).numpy()
    plot_directions(angles[:, :2], out / "directions.png",
                    f"{table.n} projection directions (rot, tilt)", force)  # fmt: skip
    plot_fsc(
        half_curve.spatial_frequency_per_angstrom.numpy(),
        {"half map 1 vs 2": half_curve.fsc.numpy(), "map vs truth": truth_curve.fsc.numpy()},
        out / "fsc.png", "Fourier shell correlation", force,
    )  # fmt: skip
    title = "truth (grey) and the reconstruction moved by the fit (contours)"
    plot_overlay(truth.numpy(), moved.numpy(), out / "overlay.png", title, force)


def _report(s: dict) -> str:
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in s.items())  # fmt: skip
    return f"""# cryomath demo

{s["particles"]} particles of the {s["model"]} ({s["box"]}^3 voxels of
{s["pixel_size_angstrom"]} A) were simulated with a CTF and noise at SNR {s["snr"]}, then
reconstructed from the RELION STAR file by direct Fourier inversion, and the reconstruction was
aligned back onto the truth (the fit should be the identity).

| quantity | value |
|---|---|
{rows}

## Projections
![projections](projections.png)

## CTF
The box is small for this defocus: beyond the frequency in the title the CTF oscillates faster
than the box's Fourier samples, so its rings alias (the moire in the 2-D image).

![ctf](ctf.png)

## Orientation coverage
![directions](directions.png)

## Fourier shell correlation
![fsc](fsc.png)

## Alignment of the reconstruction onto the truth
![overlay](overlay.png)
"""
