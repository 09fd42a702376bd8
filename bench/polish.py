"""Per-particle motion (Bayesian polishing) side by side with RELION 3.1.3 (issue 19, section 3):
the same simulated movies of particles with known tracks (``simulate.particle_movies``: a
global drift plus a smooth local motion, damage, Poisson counts, a pixel-aperture MTF and
DQE = 0.8 MTF^2), the track error against the truth, the resolution of the particles
reconstructed (true poses and CTFs) from each correction, and the wall time.

    python bench/polish.py [--movies 8] [--size 512] [--frames 24] [--dose 1.5]
                           [--reference-resolution 4.5] [--out DIR]

Both programs polish against the same reference: the true map low-passed to
``--reference-resolution`` (a refinement's map, and no reference bias beyond it in the FSC
against the true map). Corrections compared (each particle re-centred by the same
translational search against its reference image before reconstruction, as a refinement
would):

* cryomath global: ``align_frames`` then dose-weighted boxes (``aligned_sum``);
* cryomath local: the same, then ``fit_local_tracks`` (RELION's prior defaults) and the
  dose-weighted sum of each particle's boxes along its track;
* RELION motioncorr: ``relion_run_motioncorr --use_own`` with 3 x 3 patches (its local
  model), dose-weighted, boxes cut from its micrographs;
* RELION polishing: ``relion_motion_refine`` on that motion correction with the reference as
  both half maps (FSC 0.99 to its resolution, 0 beyond), ``--s_vel 0.5 --s_div 5000 --s_acc 2
  --combine_frames``;
* the truth: each particle's boxes summed along its true track (the best any method can do).

Track errors only: cryomath with the prior's sigmas times sqrt(2), and RELION's polishing with
the reference map scaled by 0.1 and 10 (RELION's correlation is in the reference's units, so
its scale weighs the prior).
"""

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from measure import require_relion

from cryomath.atoms import map_from_model, read_atoms
from cryomath.ctf import CTF
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier.crop import box_corners, crop_or_pad
from cryomath.fourier.fft import fft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.imaging import ParticleBatch, predict_images
from cryomath.io import (
    CTFParameters,
    ParticleTable,
    read_mrc,
    read_star,
    write_mrc,
    write_relion_movies_star,
    write_relion_star,
    write_star,
)
from cryomath.motion import MotionPrior, align_frames, aligned_sum, extract_boxes, fit_local_tracks
from cryomath.noise import pixel_mtf
from cryomath.projection import prepare_volume
from cryomath.reconstruction import reconstruct
from cryomath.resolution import fourier_shell_correlation, resolution_angstrom
from cryomath.resolution.postprocess import low_pass
from cryomath.simulate.movies import MovieSettings
from cryomath.simulate.particle_movies import simulate_particle_movie
from cryomath.so3.random import random_rotations

PIXEL, BOX = 1.5, 64
WEAKER = MotionPrior(0.5 * 2**0.5, 5000.0, 2.0 * 2**0.5)  # s_vel and s_acc x sqrt(2)


def centre(images: torch.Tensor, references: torch.Tensor, reach_px: float = 4.0) -> torch.Tensor:
    """``(P, 2)`` where each image's content sits (x, y): the best shift of its reference by
    cross-correlation below 1/(4 px), on a 0.1 px grid."""
    k = fftfreq_grid((BOX, BOX), dtype=torch.float64)
    keep = k.norm(dim=-1) < 0.25
    cross = (fft_nd(images, 2) * fft_nd(references, 2).conj())[..., keep]
    steps = torch.arange(-reach_px, reach_px + 1e-9, 0.1, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), -1).reshape(-1, 2)
    angle = 2 * torch.pi * k[keep] @ grid.T
    scores = cross.real @ torch.cos(angle) - cross.imag @ torch.sin(angle)
    return grid[scores.argmax(1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--dose", type=float, default=1.5)
    parser.add_argument("--reference-resolution", type=float, default=4.5)
    parser.add_argument("--out", type=Path, default=Path("bench-out/polish"))
    args = parser.parse_args()
    require_relion("relion_run_motioncorr", "relion_motion_refine")
    out, n = args.out, args.size
    out.mkdir(parents=True, exist_ok=True)
    volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), PIXEL, None, margin_angstrom=12.0)
    volume = crop_or_pad(volume, (BOX,) * 3)
    reference = low_pass(volume, args.reference_resolution, PIXEL)
    write_mrc(out / "reference.mrc", reference.float().numpy(), PIXEL, force=True)
    spectrum = prepare_volume(volume, voxel_size_angstrom=PIXEL)
    reference_spectrum = prepare_volume(reference, voxel_size_angstrom=PIXEL)
    centres = torch.arange(48, n - 47, 72)
    positions = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
    box_corners(positions, BOX, (n, n))
    mtf = pixel_mtf((n, n))
    g = torch.Generator().manual_seed(0)
    movies, rows = [], []
    for i in range(args.movies):
        p = len(positions)
        rotations = random_rotations(p, generator=g, dtype=torch.float64)
        defocus = 10000 + 10000 * torch.rand(p, generator=g, dtype=torch.float64)
        ctf = CTF(defocus, defocus, 0.0, 300.0, 2.7, 0.1)
        batch = ParticleBatch.from_tensors(rotations=rotations, pixel_size_angstrom=PIXEL,
                                           ctf=ctf, image_size=BOX)  # fmt: skip
        clean = predict_images(spectrum, batch)
        scale = 0.1 / clean.std()
        clean = clean * scale
        predicted = predict_images(reference_spectrum, batch) * scale  # what a refinement knows
        settings = MovieSettings(n_frames=args.frames, dose_per_frame_e_per_a2=args.dose,
                                 initial_speed_px_per_frame=1.0, seed=100 + i)  # fmt: skip
        movie = simulate_particle_movie(clean, positions, (n, n), PIXEL, settings, 2.0, mtf,
                                        0.8 * mtf**2)  # fmt: skip
        name = f"movie_{i:03d}.mrc"
        write_mrc(out / name, movie.frames.float().numpy(), PIXEL, force=True)
        movies.append((name, movie, predicted, rotations, defocus))
        rows.append(pd.DataFrame({"rlnMicrographName": f"MC/{name}",
                                  "rlnCoordinateX": positions[:, 0].double().numpy(),
                                  "rlnCoordinateY": positions[:, 1].double().numpy()}))  # fmt: skip
    write_relion_movies_star(out / "movies.star", [m[0] for m in movies], PIXEL, force=True)
    write_particles(out, movies, rows, args.reference_resolution)
    images, tracks, seconds = run_cryomath(movies, positions, args)
    relion_images, relion_tracks, relion_seconds, commands = run_relion(out, movies, positions,
                                                                        args)  # fmt: skip
    seconds.update(relion_seconds)
    images.update(relion_images)
    tracks.update(relion_tracks)
    truth = torch.cat([m[1].tracks_px - m[1].tracks_px.mean(1, keepdim=True) for m in movies])
    references = torch.cat([m[2] for m in movies])
    rotations = torch.cat([m[3] for m in movies])
    defocus = torch.cat([m[4] for m in movies])
    ctf = CTF(defocus, defocus, 0.0, 300.0, 2.7, 0.1)
    result = {"movies": args.movies, "particles": len(references), "size": n,
              "frames": args.frames, "dose_per_frame": args.dose, "relion_commands": commands,
              "seconds": seconds, "track_error_rms_px": {}, "resolution_angstrom": {}}  # fmt: skip
    for name, found in tracks.items():
        shape = found - found.mean(1, keepdim=True)
        error = (shape - truth).norm(dim=-1).pow(2).mean().sqrt()
        result["track_error_rms_px"][name] = float(error)
    for name, stack in images.items():
        stack = stack - stack.mean((-1, -2), keepdim=True)  # the counts' mean: not the particle's
        shifts = centre(stack, references)
        rec = reconstruct(stack, rotations, PIXEL, shifts, ctf)
        curve = fourier_shell_correlation(rec, volume, PIXEL)
        result["resolution_angstrom"][name] = {
            "fsc_0.5": resolution_angstrom(curve, 0.5), "fsc_0.143": resolution_angstrom(curve),
            "fsc_mean": float(curve.fsc[1:].mean())}  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def write_particles(out: Path, movies: list, rows: list, resolution_angstrom: float) -> None:
    """The particles STAR ``relion_motion_refine`` reads (true poses and CTFs, coordinates in
    the motion-corrected micrographs) and the reference's FSC: 0.99 to its resolution, 0
    beyond."""
    rotations = torch.cat([m[3] for m in movies]).numpy()
    defocus = torch.cat([m[4] for m in movies]).numpy()
    p = len(rotations)
    ctf = CTFParameters(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus,
                        defocus_angle_degrees=np.zeros(p), voltage_kv=np.full(p, 300.0),
                        spherical_aberration_mm=np.full(p, 2.7),
                        amplitude_contrast=np.full(p, 0.1), phase_shift_degrees=np.zeros(p),
                        bfactor_angstrom2=np.zeros(p), scale=np.ones(p))  # fmt: skip
    extra = pd.concat(rows, ignore_index=True)
    extra["rlnImageName"] = [f"{i + 1:06d}@particles.mrcs" for i in range(p)]
    table = ParticleTable(n=p, rotations=rotations, origins_angstrom=np.zeros((p, 2)), ctf=ctf,
                          pixel_size_angstrom=PIXEL, image_size=BOX, optics_group=1,
                          random_subset=np.arange(p) % 2 + 1, extra=extra)  # fmt: skip
    write_relion_star(table, out / "particles.star", force=True)
    blocks = read_star(out / "particles.star")
    blocks["optics"]["rlnMicrographOriginalPixelSize"] = PIXEL
    write_star(out / "particles.star", blocks, force=True)
    k = np.arange(BOX // 2 + 1)
    fsc = pd.DataFrame({"rlnSpectralIndex": k, "rlnResolution": k / (BOX * PIXEL),
                        "rlnAngstromResolution": BOX * PIXEL / np.maximum(k, 1),
                        "rlnFourierShellCorrelationCorrected": np.where(
                            k / (BOX * PIXEL) <= 1 / resolution_angstrom, 0.99, 0.0)})  # fmt: skip
    general = pd.DataFrame({"rlnFinalResolution": [resolution_angstrom]})
    write_star(out / "postprocess.star", {"general": general,
                                          "fsc": fsc}, force=True)  # fmt: skip


def run_cryomath(movies: list, positions: torch.Tensor, args) -> tuple[dict, dict, dict]:
    """Global alignment, then local tracks; the dose-weighted boxes of both and of the truth."""
    images = {"cryomath global": [], "cryomath local": [], "true tracks": []}
    tracks = {"cryomath global": [], "cryomath local": [], "cryomath local, prior sigmas x1.41": []}
    seconds = {"cryomath global": 0.0, "cryomath local": 0.0}
    for _, movie, predicted, _, _ in movies:
        frames = movie.frames.float()  # as read from a float32 movie, single precision throughout
        exposures, clean = movie.exposures_e_per_a2.float(), predicted.float()
        xy = positions.float()
        start = time.perf_counter()
        drift = align_frames(frames)
        boxes = -extract_boxes(frames, positions, BOX, drift)  # inverted, as extraction does
        still = torch.zeros(len(positions), args.frames, 2)
        images["cryomath global"].append(aligned_sum(boxes, still, PIXEL, exposures))
        seconds["cryomath global"] += time.perf_counter() - start
        fit = fit_local_tracks(boxes, clean, xy, PIXEL, exposures)
        images["cryomath local"].append(aligned_sum(boxes, fit.tracks_px, PIXEL, exposures))
        seconds["cryomath local"] += time.perf_counter() - start
        weaker = fit_local_tracks(boxes, clean, xy, PIXEL, exposures, prior=WEAKER)
        tracks["cryomath local, prior sigmas x1.41"].append(weaker.tracks_px + drift)
        true_moves = (movie.tracks_px - drift).float()
        images["true tracks"].append(aligned_sum(boxes, true_moves, PIXEL, exposures))
        tracks["cryomath global"].append(drift.expand(len(positions), -1, -1))
        tracks["cryomath local"].append(fit.tracks_px + drift)
    return ({k: torch.cat(v).double() for k, v in images.items()},
            {k: torch.cat(v).double() for k, v in tracks.items()}, seconds)  # fmt: skip


def relion_local_track(star: Path, positions: torch.Tensor, size: int) -> torch.Tensor:
    """``(P, F, 2)`` where RELION's motion model (global shifts plus the third-order polynomial
    of ``micrograph_model.cpp``, at ``x / W - 0.5``, ``y / H - 0.5`` and frame ``z = f``) puts
    each particle's content: minus its shift (RELION's shifts align frames to frame 1)."""
    blocks = read_star(star)
    shifts = blocks["global_shift"][["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy()
    global_part = torch.from_numpy(shifts.astype(np.float64))  # (F, 2)
    coefficients = torch.from_numpy(blocks["local_motion_model"]["rlnMotionModelCoeff"]
                                    .to_numpy(np.float64)).reshape(2, 6, 3)  # fmt: skip
    x = positions[:, 0].double() / size - 0.5
    y = positions[:, 1].double() / size - 0.5
    z = torch.arange(len(global_part), dtype=torch.float64)
    powers = torch.stack([z, z**2, z**3], -1)  # (F, 3)
    terms = torch.stack([torch.ones_like(x), x, x**2, y, y**2, x * y], -1)  # (P, 6)
    local = torch.einsum("pt,dtk,fk->pfd", terms, coefficients, powers)
    return -(global_part[None] + local)


def relion_polished_tracks(folder: Path, movies: list, n: int) -> torch.Tensor:
    """``(M * n, F, 2)`` the tracks ``relion_motion_refine`` wrote (``*_tracks.star``: one
    block per particle, ``rlnOriginX/YAngst`` per frame, the content's track), pixels."""
    found = []
    for name, *_ in movies:
        blocks = read_star(folder / "MC" / name.replace(".mrc", "_tracks.star"))
        found += [blocks[f"{i}"][["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy()
                  for i in range(n)]  # fmt: skip
    return torch.from_numpy(np.stack(found)) / PIXEL


def run_relion(out: Path, movies: list, positions: torch.Tensor, args):
    """RELION's own motion correction with 3 x 3 patches, then Bayesian polishing."""
    mc = ["relion_run_motioncorr", "--i", "movies.star", "--o", "MC/", "--use_own", "--j", "2",
          "--patch_x", "3", "--patch_y", "3", "--dose_weighting", "--angpix", str(PIXEL),
          "--voltage", "300", "--dose_per_frame", str(args.dose), "--bfactor", "150",
          "--skip_defect"]  # fmt: skip
    polish = ["relion_motion_refine", "--i", "particles.star", "--f", "postprocess.star",
              "--m1", "reference.mrc", "--m2", "reference.mrc", "--corr_mic",
              "MC/corrected_micrographs.star", "--o", "Polish/", "--fdose", str(args.dose),
              "--s_vel", "0.5", "--s_div", "5000", "--s_acc", "2", "--combine_frames", "--j",
              "2"]  # fmt: skip
    shutil.rmtree(out / "MC", ignore_errors=True)
    shutil.rmtree(out / "Polish", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(mc, cwd=out, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mc_seconds = time.perf_counter() - start
    stacks, boxes = {"relion motioncorr": [], "relion polishing": []}, []
    tracks = {"relion motioncorr": [], "relion polishing": []}
    for name, *_ in movies:
        micrograph = torch.from_numpy(read_mrc(out / "MC" / name, np.float64)[0][0])
        corner = box_corners(positions, BOX, micrograph.shape)
        boxes += [-micrograph[y0 : y0 + BOX, x0 : x0 + BOX] for x0, y0 in corner.tolist()]
        stacks["relion motioncorr"].append(torch.stack(boxes[-len(positions) :]))
        star = out / "MC" / name.replace(".mrc", ".star")
        tracks["relion motioncorr"].append(relion_local_track(star, positions, args.size))
    # polishing reads its particles' images only for their metadata: the motioncorr boxes
    write_mrc(out / "particles.mrcs", torch.stack(boxes).float().numpy(), PIXEL, force=True)
    start = time.perf_counter()
    subprocess.run(polish, cwd=out, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    polish_seconds = time.perf_counter() - start
    for name, *_ in movies:
        stem = out / "Polish" / "MC" / name.replace(".mrc", "")
        stacks["relion polishing"].append(torch.from_numpy(
            read_mrc(Path(f"{stem}_shiny.mrcs"), np.float64)[0]))  # fmt: skip
    tracks["relion polishing"] = [relion_polished_tracks(out / "Polish", movies, len(positions))]
    volume = torch.from_numpy(read_mrc(out / "reference.mrc", np.float64)[0])
    for scale in (0.1, 10.0):  # RELION's CC is in the reference's units: its prior's weight
        write_mrc(out / f"reference_x{scale:g}.mrc", (volume * scale).float().numpy(), PIXEL,
                  force=True)  # fmt: skip
        folder = f"Polish_x{scale:g}"
        shutil.rmtree(out / folder, ignore_errors=True)
        scaled = [folder + "/" if a == "Polish/" else a for a in polish if a != "--combine_frames"]
        scaled = [f"reference_x{scale:g}.mrc" if a == "reference.mrc" else a for a in scaled]
        subprocess.run(scaled, cwd=out, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        tracks[f"relion polishing, reference x{scale:g}"] = [
            relion_polished_tracks(out / folder, movies, len(positions))]  # fmt: skip
    seconds = {"relion motioncorr": mc_seconds, "relion polishing": mc_seconds + polish_seconds}
    return (
        {k: torch.cat(v) for k, v in stacks.items()},
        {k: torch.cat(v) for k, v in tracks.items()},
        seconds,
        [" ".join(mc), " ".join(polish)],
    )


if __name__ == "__main__":
    main()
