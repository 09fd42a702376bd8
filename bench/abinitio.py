"""Ab initio side by side (issue 17, section 3): ``cryomath abinitio``, RELION 3.1.3's SGD
initial model and cryoDRGN 4.3.1's ``abinit_homo_old`` (cryoDRGN2's HPS) and ``abinit --zdim 0``
(cryoDRGN-AI) on the same particles; wall time and the FSC against the truth in the better hand
(``fitting.fit_both_hands``: each map and its mirror image aligned onto the truth).

    python bench/abinitio.py --dataset b [--n 5000] [--peers relion,drgn_hps,drgn_ai]
        [--relion-timeout 1800] [--drgn-epochs 5] [--out bench-out/abinitio]
        [--cryomath-args "--representation neural"] [--then-refine]

The datasets are the inference issue's: EMD-3488 (haemoglobin, 100^3 at 1.05 A) resampled by
``relion_image_handler`` to 64^3 (1.640625 A), (a) with a B-factor of 100 A^2 applied, (b) as
deposited (sharpened); 5,000 images made by ``relion_project --ctf --add_noise`` at the
Haar-random poses, offsets (2 px sd) and CTFs (defocus 1-2.5 um, 300 kV) of a ``cryomath
simulate`` STAR, the white noise's sd set for an SNR of 0.05 over the box (measured on
``relion_project``'s noiseless images first). Everything gets two cores.

``--then-refine`` also runs ``cryomath refine`` from cryomath's map (the particles without
their poses and offsets, ``--ini-high 30``) and scores its map the same way: the chain from
particles to a refined map, its time the sum of both. With ``--refine-iterations N`` in
``--cryomath-args`` the scored map is ab initio's last stage's (``refine/map.mrc``), and the
map before it is scored too (``sgd_fsc05_best_hand_angstrom``).
"""

import argparse
import json
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from cryomath.cli import main as cryomath
from cryomath.fitting import fit_both_hands
from cryomath.io import read_mrc, read_particles, write_relion_star
from cryomath.pipelines import read_volume

MAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "map_model" / "emd_3488.mrc"
BOX, PIXEL, SNR = 64, 1.640625, 0.05
DRGN = Path("/tmp/cryodrgn-venv/bin/cryodrgn")


def run(command: list[str], log: Path, timeout: float | None = None) -> tuple[float, bool]:
    """``command`` with its output in ``log``: (wall seconds, finished in time)."""
    started = time.perf_counter()
    with log.open("w") as out:
        try:
            subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True,
                           timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return time.perf_counter() - started, False
    return time.perf_counter() - started, True


def make_dataset(folder: Path, dataset: str, n: int) -> tuple[Path, Path]:
    """The particles STAR and the truth map of dataset ``a`` or ``b`` (module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.mrc"
    star = folder / "particles.star"
    if star.exists():
        return star, truth
    rescaled = folder / "map64.mrc"
    run(["relion_image_handler", "--i", str(MAP), "--o", str(rescaled), "--angpix", "1.05",
         "--rescale_angpix", str(PIXEL), "--new_box", str(BOX)],
        folder / "rescale.log")  # fmt: skip
    if dataset == "a":
        run(["relion_image_handler", "--i", str(rescaled), "--o", str(truth), "--bfactor", "100"],
            folder / "bfactor.log")  # fmt: skip
    else:
        rescaled.rename(truth)
    # poses, offsets and CTFs from cryomath's simulation; the images from RELION's projector
    assert cryomath(["simulate", str(truth), "--n", str(n), "--shift-sigma", str(2 * PIXEL),
                     "--out", str(folder / "poses"), "--json"]) == 0  # fmt: skip
    poses = folder / "poses" / "particles.star"
    clean = folder / "clean"
    run(["relion_project", "--i", str(truth), "--ang", str(poses), "--o", str(clean), "--ctf"],
        folder / "clean.log")  # fmt: skip
    signal = float(np.asarray(read_mrc(clean.with_suffix(".mrcs"))[0], np.float64).var())
    sd = (signal / SNR) ** 0.5
    run(["relion_project", "--i", str(truth), "--ang", str(poses), "--o", str(folder / "particles"),
         "--ctf", "--add_noise", "--white_noise", f"{sd:.6g}"], folder / "noisy.log")  # fmt: skip
    clean.with_suffix(".mrcs").unlink()
    return star, truth


def score(path: Path, truth: torch.Tensor) -> dict:
    """The FSC 0.5 resolution against the truth of the map at ``path`` in either hand."""
    volume, _ = read_volume(path, BOX, PIXEL)
    given, mirrored = fit_both_hands(truth, volume.double(), PIXEL)
    best = min(given, mirrored, key=lambda f: f.resolution_angstrom)
    return {
        "map": str(path),
        "fsc05_best_hand_angstrom": best.resolution_angstrom,
        "fsc05_other_hand_angstrom": max(given.resolution_angstrom, mirrored.resolution_angstrom),
    }


def run_ours(command: list[str], result_map: Path) -> dict:
    """``cryomath COMMAND`` in this process: the command line, its wall time and its map."""
    started = time.perf_counter()
    assert cryomath(command) == 0
    return {"command": "cryomath " + " ".join(command), "seconds": time.perf_counter() - started,
            "map": result_map}  # fmt: skip


def run_cryomath(star: Path, out: Path, extra: list[str]) -> dict:
    command = ["abinitio", str(star), "--out", str(out), "--force", "--json", *extra]
    result = run_ours(command, out / "abinitio_class001.mrc")
    if refine_stage(extra):  # the scored map is the last stage's
        result.update(map=out / "refine" / "map.mrc", sgd_map=result["map"])
    return result


def refine_stage(extra: list[str]) -> bool:
    """Whether ``extra`` asks ab initio for a last stage of refinement (N > 0)."""
    for i, arg in enumerate(extra):
        if arg.startswith("--refine-iterations"):
            return int(arg.split("=", 1)[1] if "=" in arg else extra[i + 1]) > 0
    return False


def run_refine(star: Path, reference: Path, out: Path) -> dict:
    """``cryomath refine`` from ``reference`` on the particles of ``star`` without their poses
    and offsets (``start.star`` beside it)."""
    start = star.with_name("start.star")
    if not start.exists():
        table = read_particles(star)
        write_relion_star(table.without_poses(), start)
    command = ["refine", str(start), "--reference", str(reference), "--ini-high", "30", "--out",
               str(out), "--force", "--json"]  # fmt: skip
    return run_ours(command, out / "map.mrc")


def run_relion(star: Path, out: Path, timeout: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    command = [
        "relion_refine", "--i", str(star), "--o", str(out / "run"), "--sgd", "--denovo_3dref",
        "--K", "1", "--sym", "C1", "--sgd_ini_iter", "10", "--sgd_inbetween_iter", "20",
        "--sgd_fin_iter", "10", "--sgd_ini_resol", "35", "--sgd_fin_resol", "15",
        "--sgd_ini_subset", "100", "--sgd_fin_subset", "300", "--ctf", "--zero_mask",
        "--flatten_solvent", "--particle_diameter", "90", "--oversampling", "1",
        "--healpix_order", "1", "--offset_range", "6", "--offset_step", "2", "--pad", "1",
        "--skip_gridding", "--j", "2", "--pool", "3", "--dont_combine_weights_via_disc",
        "--random_seed", "0",
    ]  # fmt: skip
    seconds, finished = run(command, out / "relion.log", timeout)
    maps = sorted(out.glob("run_it*_class001.mrc"))
    return {"command": " ".join(command), "seconds": seconds, "finished": finished,
            "map": maps[-1] if maps else None}  # fmt: skip


def run_cryodrgn(star: Path, out: Path, engine: str, epochs: int, timeout: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    ctf = out / "ctf.pkl"
    run([str(DRGN), "parse_ctf_star", str(star), "-o", str(ctf), "-D", str(BOX), "--Apix",
         str(PIXEL)], out / "ctf.log")  # fmt: skip
    stack = str(star.with_suffix(".mrcs"))
    common = ["--ctf", str(ctf), "-n", str(epochs), "--uninvert-data", "-o", str(out / "run")]
    if engine == "drgn_hps":
        command = [str(DRGN), "abinit_homo_old", stack, *common]
    else:
        command = [str(DRGN), "abinit", stack, "--zdim", "0", "--no-amp", *common]
    seconds, finished = run(command, out / "cryodrgn.log", timeout)
    maps = sorted((out / "run").glob("**/*.mrc"), key=lambda p: p.stat().st_mtime)
    return {"command": " ".join(command), "seconds": seconds, "finished": finished,
            "map": maps[-1] if maps else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("a", "b"), default="b")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--peers", default="relion,drgn_hps,drgn_ai")
    parser.add_argument("--relion-timeout", type=float, default=1800)
    parser.add_argument("--drgn-epochs", type=int, default=5)
    parser.add_argument("--drgn-timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=Path("bench-out/abinitio"))
    parser.add_argument("--cryomath-args", default="", help="more options of cryomath abinitio")
    parser.add_argument("--then-refine", action="store_true",
                        help="then cryomath refine from its map (module docstring)")  # fmt: skip
    args = parser.parse_args()
    folder = args.out / args.dataset
    star, truth_path = make_dataset(folder / "data", args.dataset, args.n)
    truth, _ = read_volume(truth_path, BOX, PIXEL)
    truth = truth.double()
    results = {"dataset": args.dataset, "particles": args.n, "box": BOX, "pixel": PIXEL}
    extra = shlex.split(args.cryomath_args)
    runs = {"cryomath": lambda: run_cryomath(star, folder / "cryomath", extra)}
    if args.then_refine:
        runs["cryomath_refine"] = lambda: run_refine(
            star, folder / "cryomath" / "abinitio_class001.mrc", folder / "cryomath_refine"
        )
    peers = [p for p in args.peers.split(",") if p]
    if "relion" in peers:
        runs["relion"] = lambda: run_relion(star, folder / "relion", args.relion_timeout)
    for engine in ("drgn_hps", "drgn_ai"):
        if engine in peers:
            runs[engine] = lambda e=engine: run_cryodrgn(star, folder / e, e, args.drgn_epochs,
                                                        args.drgn_timeout)  # fmt: skip
    for name, job in runs.items():
        result = job()
        if result["map"] is not None:
            result.update(score(result["map"], truth))
            result["map"] = str(result["map"])
        if "sgd_map" in result:  # the map before --refine-iterations' stage
            sgd = score(result.pop("sgd_map"), truth)
            result["sgd_fsc05_best_hand_angstrom"] = sgd["fsc05_best_hand_angstrom"]
        results[name] = result
        print(json.dumps({name: result}, default=str), flush=True)
    ours = results["cryomath"]
    if args.then_refine:
        chain = results["cryomath_refine"]
        chain["seconds_with_abinitio"] = chain["seconds"] + ours["seconds"]
    for name in runs:
        if not name.startswith("cryomath") and results[name].get("fsc05_best_hand_angstrom"):
            results[name]["time_ratio_vs_cryomath"] = results[name]["seconds"] / ours["seconds"]
    (folder / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
