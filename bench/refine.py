"""3-D auto-refinement at the issue's test size, and side by side with RELION 3.1.3 (issue 16,
sections 4 and 5): the same particles, starting map, band and searches; wall time, median pose
error, the map's FSC against the truth, and the same for the map of the true poses.

    python bench/refine.py [--n 2000] [--pixel 1.5] [--model PDB] [--sym C1] [--mates A:C,B:D]
                           [--dataset a|b] [--no-oracle] [--relion] [--relion-timeout S]
                           [--reuse-cryomath] [--relion-score-only] [--device cuda] [--out DIR]
                           [--refine-args "--global-recheck"]

The particles are simulated by ``cryomath simulate`` (the bundled 6VYB N-domain, box 48, CTF,
SNR 0.05, offsets of 3 A sd, Haar-random poses), or with ``--dataset`` they are section 5's
(a) or (b), made by ``relion_project`` from EMD-3488 at 64^2 (``bench/abinitio.py``'s
``make_dataset``; ``--mates A:C,B:D`` then measures modulo the 2-fold of its model, 5ME2;
the floor there takes each image's noise as ``var(clean) / 0.05``, where RELION added one sd to
all). Both programs get them without poses or
origins (``start.star``) and the noise-free truth rendered on the same grid as the starting
map, low-passed by each to 30 A (``--ini-high`` / ``--ini_high``). Pose error: the geodesic
angle after the one global rotation that best aligns the refined poses with the true ones
(their chordal mean), each refined pose first replaced by its symmetry mate nearest the truth
(``--sym``, the group refine and the true poses' reconstruction impose; or ``--mates``, an
exact 2-fold of the model that is not imposed); the truth FSC is the refined map's against the
rendered truth at 0.5, as it is and turned into the truth's frame by that global rotation.
RELION runs ``relion_refine_mpi --auto_refine --split_random_halves`` with three MPI ranks
(``mpirun --oversubscribe``, two cores) and ``--firstiter_cc`` (its reference is not on the
images' greyscale; cryomath scales its own, ``inference.greyscale``). A RELION run longer than
one sitting: ``--relion-timeout`` stops it, and the same command with ``--reuse-cryomath``
continues it from its last iteration (``run_relion``); every iteration it finished is scored
(``iterations``: its summed seconds, pose errors and maps), and ``--relion-score-only``
scores a run as it stands without launching it. ``bench/long_runs.sh`` runs it to the end
across sittings, and ``bench/pause.sh`` stops it to free the cores for another job; its
pauses do not count.

The floor: ``efficient_median_error_degrees`` and ``efficient_median_offset_error_px``, the
median rotation and offset errors an efficient estimator would reach knowing the true map,
CTFs and noise (the Cramér-Rao bound of ``imaging.fisher`` per particle). No refinement can
beat it on average; the issue's 2-degree target is below it for the bundled N-domain at SNR
0.05 (2.2 degrees).

The gold-standard oracle (``oracle``): the best a gold-standard refinement could do with these
particles. Its references are fixed: the half maps the true poses give, regularised per shell
by their FSC as ``refine``'s are, each half's particles scored against the *other* half's map
(independent of their own noise, as a refinement's leave-out references are). It starts from
the refinement's end (noise, offsets, scales, band) and runs ``refine``'s schedule of passes
(global HEALPix order 2, then local orders 3, 4, 5, 5, RELION's offsets). Its median pose
error and the map of its final poses bound what the refinement's own, worse references can
give.
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cryomath import so3
from cryomath.cli import main as _cryomath
from cryomath.fitting.refine import transform_map
from cryomath.fourier import shift_3d
from cryomath.imaging import NoiseSpectrum, iter_batches, predict_images
from cryomath.imaging.fisher import pose_fisher_information
from cryomath.inference.refine import RefineSettings, refine_iteration
from cryomath.inference.refine_rules import sampling_for
from cryomath.io import read_mrc, read_particles, read_star, write_mrc, write_relion_star
from cryomath.pipelines import read_volume
from cryomath.pipelines.refinement import load_checkpoint
from cryomath.projection import prepare_volume
from cryomath.reconstruction.direct import accumulate_halves, invert
from cryomath.resolution import fourier_shell_correlation, resolution_angstrom
from cryomath.so3.symmetry import point_group

MODEL = "src/cryomath/data/6vyb_ndom.pdb.gz"
DATASET_MODEL = Path(__file__).resolve().parents[2] / "shared/data/map_model/5me2.pdb"


def cryomath(args: list[str]) -> int:
    """A cryomath command, its own output (JSON) kept off this script's."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _cryomath(args)


MATES = torch.eye(3, dtype=torch.float64)[None]  # the poses that see the same map (--mates)


def mated(truth: np.ndarray, found: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``truth`` and ``found`` as tensors, each found pose replaced by its mate (``MATES``)
    nearest its true pose."""
    truth = torch.as_tensor(truth)
    return truth, so3.closest_symmetric_pose(torch.as_tensor(found), truth, MATES)


def pose_errors(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Degrees between ``found`` (each pose its mate nearest the truth) and ``truth`` after
    their best common rotation."""
    return so3.pose_errors_degrees(*mated(truth, found)).numpy()


def exact_mates(model: str, pairs: str) -> torch.Tensor:
    """``(2, 3, 3)``: the identity and the rotation that carries the model's chains onto their
    copies (``pairs`` "A:C,B:D"; Kabsch on the C-alpha atoms of the residues both hold), for a
    model with an exact 2-fold such as haemoglobin: poses A and A S see the same map."""
    import gemmi

    chains = gemmi.read_structure(model)[0]
    source, target = [], []
    for pair in pairs.split(","):
        one, two = (chains[name] for name in pair.split(":"))
        ca = {r.seqid.num: r["CA"][0].pos for r in two if r.find_atom("CA", "*")}
        for r in one:
            if r.find_atom("CA", "*") and r.seqid.num in ca:
                source.append(r["CA"][0].pos.tolist())
                target.append(ca[r.seqid.num].tolist())
    rotation, _ = so3.kabsch(torch.tensor(source, dtype=torch.float64),
                             torch.tensor(target, dtype=torch.float64))  # fmt: skip
    return torch.stack([torch.eye(3, dtype=torch.float64), rotation])


def map_scores(path: Path, half1: Path, half2: Path, truth: torch.Tensor, pixel: float,
               poses: tuple[np.ndarray, np.ndarray] | None = None,
               origins: tuple[np.ndarray, np.ndarray] | None = None) -> dict:  # fmt: skip
    """The map's FSC 0.5 against the truth and its halves' (unmasked) FSC 0.143, in A; with
    ``poses`` (true, found), also the map's FSC 0.5 in the truth's frame: turned by the one
    rotation the pose errors remove (a refinement's frame may drift from its starting map's,
    which no data can tell); with ``origins`` (true, found; ``(n, 2)`` A) as well, also after
    the map's one 3-D translation that the offsets' errors show (``common_translation``): the
    same freedom for the map's origin."""
    volume = torch.from_numpy(read_mrc(path)[0].astype(np.float64))
    a, b = (torch.from_numpy(read_mrc(p)[0].astype(np.float64)) for p in (half1, half2))
    scores = {
        "truth_fsc_05_angstrom": resolution_angstrom(
            fourier_shell_correlation(volume, truth, pixel), 0.5),
        "half_map_fsc_0143_angstrom": resolution_angstrom(
            fourier_shell_correlation(a, b, pixel), 0.143),
    }  # fmt: skip
    if poses is not None:
        true, found = mated(*poses)
        frame = so3.chordal_mean(true.transpose(-1, -2) @ found)
        n = volume.shape[-1]
        origin = torch.full((3,), -(n // 2) * pixel, dtype=torch.float64)
        turned = transform_map(volume, pixel, origin, frame, torch.zeros(3, dtype=torch.float64),
                               volume.shape, pixel, origin)  # fmt: skip
        scores["truth_fsc_05_angstrom_in_truth_frame"] = resolution_angstrom(
            fourier_shell_correlation(turned, truth, pixel), 0.5
        )
        if origins is not None:
            shift = common_translation(true, found, *origins)
            moved = shift_3d(volume, -shift / pixel)
            turned = transform_map(moved, pixel, origin, frame, torch.zeros(3, dtype=torch.float64),
                                   volume.shape, pixel, origin)  # fmt: skip
            scores["map_translation_angstrom"] = shift.tolist()
            scores["truth_fsc_05_angstrom_in_truth_frame_and_origin"] = resolution_angstrom(
                fourier_shell_correlation(turned, truth, pixel), 0.5
            )
    return scores


def common_translation(
    true: torch.Tensor,
    found: torch.Tensor,
    true_origins: np.ndarray,
    found_origins: np.ndarray,
    within_degrees: float = 10.0,
) -> torch.Tensor:
    """``(x, y, z)`` A: the one translation ``d`` of the refined map that best explains its
    offsets' errors, ``found - true = (A d)_xy`` for each found pose ``A`` (mated, within
    ``within_degrees`` of the truth after the common rotation; least squares). Moving all
    offsets and the map together leaves every image's likelihood unchanged (only the offsets'
    prior sees it), so the map's origin, like its frame, can drift (on dataset (b) by 0.8 A
    along z); the map is then compared with the truth after moving it back by ``d``."""
    errors = so3.pose_errors_degrees(true, found)
    good = torch.as_tensor(errors < within_degrees)
    if int(good.sum()) < 3:
        return torch.zeros(3, dtype=torch.float64)
    delta = torch.as_tensor(found_origins - true_origins, dtype=torch.float64)[good]
    rows = found[good][:, :2, :].to(torch.float64).reshape(-1, 3)
    return torch.linalg.lstsq(rows, delta.reshape(-1, 1)).solution[:, 0]


def efficient_median_errors(table, truth_map: torch.Tensor, pixel: float,
                            snr: float) -> tuple[float, float]:  # fmt: skip
    """The median rotation error (degrees) and offset error (pixels) of an efficient
    estimator: errors drawn from each particle's Cramér-Rao bound (``imaging.fisher``'s inverse,
    its rotation and its offset block; the truth's projections at the true poses, each image's
    own white noise ``var(clean) / snr`` as ``simulate`` made it), 64 draws each."""
    spectrum = prepare_volume(truth_map, 2.0, "cubic", voxel_size_angstrom=pixel)
    n = truth_map.shape[-1]
    unit = NoiseSpectrum((1,), torch.full((1, n), n * n / 2.0, dtype=torch.float64))
    rotations, offsets = [], []
    generator = torch.Generator().manual_seed(0)
    for batch in iter_batches(table, 250, None, torch.float64):
        variance = predict_images(spectrum, batch).var(dim=(-2, -1)) / snr
        batch = replace(batch, optics_group=1)
        fisher = pose_fisher_information(spectrum, batch, unit) / variance[:, None, None]
        bound = torch.linalg.inv(fisher)
        for block, draws in ((slice(0, 3), rotations), (slice(3, 5), offsets)):
            root = torch.linalg.cholesky(bound[:, block, block])
            z = torch.randn(len(batch), root.shape[-1], 64, generator=generator,
                            dtype=torch.float64)  # fmt: skip
            draws.append((root @ z).norm(dim=1).flatten())
    return (float(torch.rad2deg(torch.cat(rotations)).median()),
            float(torch.cat(offsets).median()))  # fmt: skip


def oracle(table, refined: Path, truth_map: torch.Tensor, pixel: float, sym: str = "C1") -> dict:
    """The gold-standard oracle (module docstring), started from the refinement's checkpoint in
    ``refined`` (its noise, offsets, scales, band and halves: only the references differ): per
    pass, the median pose error and the share beyond 30 degrees; the FSC 0.5 against the truth
    of the map of its final poses."""
    box = truth_map.shape[-1]
    settings = RefineSettings(particle_diameter_angstrom=0.9 * box * pixel, leave_out_groups=1,
                              symmetry=sym)  # fmt: skip
    state = load_checkpoint(refined)
    state.left_out = None
    # the true poses, the refinement's halves
    sums = accumulate_halves(table, state.halves, symmetry=sym)
    raw = [invert(sums[h], prior_weight=1.0) for h in (1, 2)]
    fsc = fourier_shell_correlation(raw[0], raw[1], pixel).fsc
    crossed = torch.stack([invert(sums[h], half_map_fsc=fsc) for h in (2, 1)]).float()
    blind = table.without_poses()
    passes, band = [], state.band_shell  # the refinement's (each iteration may widen it)
    for order, step in [(2, 1.0), (3, 0.5), (4, 0.25), (5, 0.25), (5, 0.25)]:
        state.maps = crossed  # half 1's particles against half 2's map, and the reverse
        offset_range = settings.offset_range_px if order == 2 else 3 * step
        state.sampling = sampling_for(settings, order, offset_range, step, band, box, pixel)
        refine_iteration(blind, state, settings)
        errors = pose_errors(table.rotations, state.particles.rotations)
        passes.append({"healpix_order": order, "median_pose_error_degrees":
                       float(np.median(errors)), "share_over_30_degrees":
                       float((errors > 30).mean())})  # fmt: skip
    fsc = fourier_shell_correlation(state.full.double(), truth_map, pixel)
    return {"passes": passes, "truth_fsc_05_angstrom": resolution_angstrom(fsc, 0.5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--model", default=MODEL, help="atomic model or map of the truth")
    parser.add_argument("--pixel", type=float, default=1.5)
    parser.add_argument("--sym", default="C1", help="point group refine imposes (RELION's)")
    parser.add_argument("--mates", help="chain pairs of an exact 2-fold (haemoglobin: A:C,B:D): "
                        "pose errors modulo it")  # fmt: skip
    parser.add_argument("--dataset", choices=("a", "b"), help="section 5's particles (EMD-3488)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the gold-standard oracle")
    parser.add_argument("--max-iterations", type=int, default=25)
    parser.add_argument("--relion", action="store_true", help="also run RELION 3.1.3")
    parser.add_argument("--relion-timeout", type=float, default=3600.0,
                        help="seconds RELION runs this time (it continues the next)")  # fmt: skip
    parser.add_argument("--relion-score-only", action="store_true",
                        help="score the RELION run in --out as it is; launch nothing")  # fmt: skip
    parser.add_argument("--reuse-cryomath", action="store_true",
                        help="score the refinement in --out, not run it again")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("bench-out/refine"))
    parser.add_argument("--device", default="cpu", help="cryomath's device (cpu, cuda)")
    parser.add_argument("--refine-args", default="", help="more options for cryomath refine "
                        "(e.g. --global-recheck)")  # fmt: skip
    args = parser.parse_args()
    out, pixel = args.out, args.pixel
    global MATES
    if args.mates:
        MATES = exact_mates(str(DATASET_MODEL) if args.dataset else args.model, args.mates)
    if args.sym != "C1":  # the group refine imposes: its mates are the same map
        MATES = point_group(args.sym, dtype=torch.float64)
    sim, truth_path = out / "sim", Path(args.model)
    if args.dataset:
        from abinitio import PIXEL, make_dataset  # this folder's

        with contextlib.redirect_stdout(io.StringIO()):  # its cryomath simulate's JSON
            _, truth_path = make_dataset(sim, args.dataset, args.n)
        pixel = PIXEL
    else:
        assert cryomath(["simulate", args.model, "--n", str(args.n), "--box-size", "48",
                         "--pixel-size", str(pixel), "--snr", "0.05", "--shift-sigma", "3",
                         "--out", str(sim), "--force", "--json"]) == 0  # fmt: skip
    table = read_particles(sim / "particles.star")
    box = int(table.image_size[0])
    truth_map, _ = read_volume(truth_path, box, pixel)
    if truth_path != sim / "truth.mrc":  # the model on the particles' grid (a dataset's is there)
        write_mrc(sim / "truth.mrc", truth_map.float().numpy(), pixel, force=True)
    write_relion_star(table.without_poses(), sim / "start.star",
                      force=True)  # fmt: skip
    assert cryomath(["reconstruct", str(sim / "particles.star"), "--out", str(out / "truth"),
                     "--halves", "--sym", args.sym, "--device", args.device, "--force",
                     "--json"]) == 0  # fmt: skip
    rec = out / "truth"
    rotation_floor, offset_floor = efficient_median_errors(table, truth_map, pixel, 0.05)
    result = {"particles": args.n, "dataset": args.dataset, "box": box,
              "refine_args": args.refine_args,
              "pixel_size_angstrom": pixel, "device": args.device,
              "efficient_median_error_degrees": rotation_floor,
              "efficient_median_offset_error_px": offset_floor,
              "true_poses": map_scores(rec / "full.mrc", rec / "half1.mrc", rec / "half2.mrc",
                                       truth_map, pixel)}  # fmt: skip
    ours = out / "cryomath"
    timing = ours / "bench-seconds.json"
    if args.reuse_cryomath:
        if not timing.exists():
            raise SystemExit(f"--reuse-cryomath: no finished refinement in {ours}")
        seconds = json.loads(timing.read_text())["seconds"]
    else:
        start = time.perf_counter()
        assert cryomath(["refine", str(sim / "start.star"), "--reference",
                         str(sim / "truth.mrc"), "--particle-diameter", str(0.9 * box * pixel),
                         "--max-iterations", str(args.max_iterations), "--out", str(ours),
                         "--device", args.device, "--sym", args.sym, "--force", "--json",
                         *args.refine_args.split()]) == 0  # fmt: skip
        seconds = time.perf_counter() - start
        timing.write_text(json.dumps({"seconds": seconds}))
    found = read_particles(ours / "particles.star", allow_unknown_columns=True)
    errors = pose_errors(table.rotations, found.rotations)
    iterations = json.loads((ours / "iterations.json").read_text())["iterations"]
    result["cryomath"] = {
        "seconds": seconds, "iterations": len(iterations),
        "median_pose_error_degrees": float(np.median(errors)),
        "share_over_30_degrees": float((errors > 30).mean()),
        **map_scores(ours / "map.mrc", ours / "half1.mrc", ours / "half2.mrc", truth_map, pixel,
                     (table.rotations, found.rotations),
                     (table.origins_angstrom, found.origins_angstrom)),
    }  # fmt: skip
    if not args.no_oracle:
        result["gold_standard_oracle"] = oracle(table, ours, truth_map, pixel, args.sym)
    if args.relion:
        result["relion"] = run_relion(sim, out / "relion", table, truth_map, pixel, box, args)
        result["time_ratio_relion_over_cryomath"] = result["relion"]["seconds"] / seconds
    print(json.dumps(result, indent=2))
    (out / "result.json").write_text(json.dumps(result, indent=2))


def run_relion(sim: Path, folder: Path, table, truth_map, pixel: float, box: int,
               args) -> dict:  # fmt: skip
    """RELION's auto-refine on the same start (module docstring). A run stopped by
    ``--relion-timeout`` (or by the end of a session) is continued from its last iteration
    (``--continue``) the next time; its seconds are the sum of its iterations' own times (from
    its files' times and each launch's start), so that the gaps between launches do not count."""
    if shutil.which("relion_refine_mpi") is None:
        raise SystemExit("relion_refine_mpi is not on the PATH (apt-get install relion)")
    folder.mkdir(parents=True, exist_ok=True)
    ranks = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "3", "relion_refine_mpi"]
    threads = ["--j", "1", "--pool", "30", "--dont_combine_weights_via_disc"]
    command = [*ranks, "--i", "start.star", "--o", str((folder / "run").resolve()), "--ref",
               "truth.mrc", "--ini_high", "30", "--firstiter_cc", "--auto_refine",
               "--split_random_halves", "--particle_diameter", str(0.9 * box * pixel), "--ctf",
               "--zero_mask", "--flatten_solvent", "--healpix_order", "2",
               "--auto_local_healpix_order", "4", "--offset_range", "5", "--offset_step", "1",
               "--sym", args.sym, "--low_resol_join_halves", "40", "--norm", "--scale",
               "--oversampling", "1", "--pad", "2", "--maxsig", "64", *threads]  # fmt: skip
    launches_path = folder / "launches.json"
    launches = json.loads(launches_path.read_text()) if launches_path.exists() else []
    final = _relion_final(folder)
    if final is None and not args.relion_score_only:
        done = _relion_iterations(folder, "optimiser")
        if done:  # options other than these come from its optimiser file
            root = folder.resolve() / f"run_ct{_iteration(done[-1])}"
            launch = [*ranks, "--continue", str(done[-1].resolve()), "--o", str(root), *threads]
        else:
            launch = command
        launches.append(time.time())
        launches_path.write_text(json.dumps(launches))
        _run_or_stop(launch, sim, args.relion_timeout)
        final = _relion_final(folder)
    ends = {_iteration(p): p for p in _relion_iterations(folder, "data")}  # a redone one: its last
    if final is None and not ends:
        raise SystemExit(f"no finished RELION iteration in {folder} to score")
    scores = {i: _relion_iteration_scores(folder, p, sim, table, truth_map, pixel)
              for i, p in ends.items()}  # fmt: skip
    if final is not None:
        prefix = final.name.removesuffix("_data.star")
        maps = ("half1_class001_unfil", "half2_class001_unfil", "class001")
        result = _relion_scores(final, *(folder / f"{prefix}_{name}.mrc" for name in maps),
                                sim, table, truth_map, pixel)  # fmt: skip
    else:  # scored at its last iteration
        result = scores[max(ends)]
    trajectory = [{"iteration": i, "seconds": _relion_seconds(folder, launches, p.with_name(
        p.name.replace("_data.", "_optimiser.")).stat().st_mtime), **scores[i]}
        for i, p in sorted(ends.items()) if i > 0]  # fmt: skip
    return {"seconds": _relion_seconds(folder, launches), "finished": final is not None,
            "launches": len(launches), "command": " ".join(command), **result,
            "iterations": trajectory}  # fmt: skip


def _relion_iteration_scores(folder: Path, data: Path, sim: Path, table, truth_map, pixel: float
                             ) -> dict:  # fmt: skip
    """``_relion_scores`` of an unfinished iteration: its map is the mean of its half maps; with
    RELION's own resolution estimate of that iteration (``rlnCurrentResolution``)."""
    prefix = data.name.removesuffix("_data.star")
    model = read_star(folder / f"{prefix}_half1_model.star")["model_general"]
    half1, half2 = (folder / f"{prefix}_half{h}_class001.mrc" for h in (1, 2))
    mean = (read_mrc(half1)[0].astype(np.float64) + read_mrc(half2)[0]) / 2
    full = folder / f"{prefix}_halves_mean.mrc"
    write_mrc(full, mean.astype(np.float32), pixel, force=True)
    return {
        "relion_current_resolution_angstrom": float(model["rlnCurrentResolution"]),
        **_relion_scores(data, half1, half2, full, sim, table, truth_map, pixel),
    }


def _relion_scores(data: Path, half1: Path, half2: Path, full: Path, sim: Path, table,
                   truth_map, pixel: float) -> dict:  # fmt: skip
    """The pose errors of RELION's particles STAR ``data`` (its rows matched to the truth by
    image name) and ``map_scores`` of its maps."""
    particles = read_particles(data, allow_unknown_columns=True)
    found = particles.rotations
    names = read_star(data)["particles"]["rlnImageName"].tolist()
    order = {name: i for i, name in enumerate(
        read_star(sim / "start.star")["particles"]["rlnImageName"].tolist())}  # fmt: skip
    rows = [order[name] for name in names]
    truth = table.rotations[rows]
    errors = pose_errors(truth, found)
    return {
        "last_iteration": data.name,
        "median_pose_error_degrees": float(np.median(errors)),
        "share_over_30_degrees": float((errors > 30).mean()),
        **map_scores(full, half1, half2, truth_map, pixel, (truth, found),
                     (table.origins_angstrom[rows], particles.origins_angstrom)),
    }  # fmt: skip


def _iteration(path: Path) -> int:
    """The iteration of RELION's ``..._itNNN_kind.star``."""
    return int(path.name.rsplit("_it", 1)[1][:3])


def _relion_iterations(folder: Path, kind: str) -> list[Path]:
    """A RELION run's ``*_itNNN_{kind}.star`` files in the order of their iterations and times
    (a run continued after iteration N is named ``run_ctN_itNNN``, and writes iteration N again
    as it starts)."""
    paths = folder.glob(f"run*_it[0-9][0-9][0-9]_{kind}.star")
    return sorted(paths, key=lambda p: (_iteration(p), p.stat().st_mtime))


def _relion_final(folder: Path) -> Path | None:
    """The data STAR an auto-refine writes once it has converged, if it has."""
    return next((p for p in folder.glob("run*_data.star") if "_it" not in p.name), None)


def _relion_seconds(folder: Path, launches: list[float], until: float = float("inf")) -> float:
    """The sum of each iteration's time up to the file time ``until``: from the latest event
    before it (its previous iteration's optimiser file, or the launch that computed it) to its
    own optimiser file, less the pauses in it (``pauses.json``, written by ``bench/pause.sh``);
    the final reconstruction after convergence likewise."""
    ends = [p.stat().st_mtime for p in _relion_iterations(folder, "optimiser")]
    final = _relion_final(folder)
    if final is not None:
        ends.append(max(p.stat().st_mtime for p in folder.glob(final.name.removesuffix(
            "_data.star") + "_*")))  # fmt: skip
    events = sorted(launches + ends)
    path = folder / "pauses.json"
    pauses = json.loads(path.read_text()) if path.exists() else []
    seconds = 0.0
    for end in ends:
        if end <= until and any(e < end for e in events):
            start = max(e for e in events if e < end)
            seconds += end - start - sum(max(0.0, min(end, b) - max(start, a)) for a, b in pauses)
    return seconds


def _run_or_stop(command: list[str], cwd: Path, timeout: float) -> None:
    """Run ``command`` in ``cwd``; past ``timeout`` seconds stop it and every process it
    started (mpirun's ranks)."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    try:
        if process.wait(timeout=timeout) != 0:
            raise SystemExit(f"{command[0]} failed with exit status {process.returncode}")
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


if __name__ == "__main__":
    main()
