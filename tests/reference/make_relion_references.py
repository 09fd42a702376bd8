"""Regenerate the RELION outputs beside this script from RELION itself (Debian package `relion`
3.1.3): ``relion_symmetry_ops.json`` (the symmetry operators ``relion_refine`` prints, 5-8
significant digits), ``relion_expand_{D2,I1}.star`` (``relion_particle_symmetry_expand`` of
``relion_expand_input.star``) and ``dose_weighting/`` (``relion_run_motioncorr --use_own
--dose_weighting`` of :func:`dose_weighting_movie`: its aligned, dose-weighted sum and its
shifts), ``polishing/movie_tracks.star`` (``relion_run_motioncorr --use_own`` then
``relion_motion_refine`` of :func:`polishing_movie` against the true map: RELION's track of
each particle), ``white_noise/`` (``relion_project --white_noise``:
:func:`relion_white_noise`) and ``mask_create/`` (``relion_mask_create``:
:func:`relion_mask_create`). ``ewald/`` comes from ``bench/ewald.py --write-reference``.

Run: python tests/reference/make_relion_references.py  (needs RELION on PATH).
"""

import json
import re
import subprocess
import tempfile
from pathlib import Path

GROUPS = ["C1", "C2", "C5", "D2", "D3", "D7", "T", "O", "I1", "I2", "I3", "I4"]


def relion_ops(group: str) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["relion_refine", "--sym", group, "--print_symmetry_ops", "--o", f"{tmp}/x"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    lines = out.splitlines()
    ops = []
    for i, line in enumerate(lines):
        if re.match(r"\s*R\(\d+\)=", line):
            ops.append([[float(v) for v in lines[i + k].split()] for k in (1, 2, 3)])
    return ops


def dose_weighting_movie():
    """8 frames of 128^2: a 1/k texture (rms 0.3) plus independent noise (sd 0.3) plus 10, as
    float32 (what RELION reads); seeded, so the test makes the same frames."""
    import torch

    from cryomath.simulate.movies import texture

    g = torch.Generator().manual_seed(0)
    frames = texture(128, 0.3, seed=0)[None] + 0.3 * torch.randn(
        8, 128, 128, generator=g, dtype=torch.float64
    )
    return (frames + 10).float()


def relion_dose_weighting(folder: Path) -> None:
    """``relion_run_motioncorr --use_own`` (global, 4 e/A^2 per frame, 300 kV, 1 A) of the movie:
    ``movie_sum.mrc`` and ``movie.star`` (its shifts) into ``folder``."""
    import shutil
    import tempfile

    from cryomath.io import write_mrc, write_relion_movies_star

    with tempfile.TemporaryDirectory() as tmp:
        write_mrc(Path(tmp) / "movie.mrc", dose_weighting_movie().numpy(), 1.0)
        write_relion_movies_star(Path(tmp) / "movies.star", ["movie.mrc"], 1.0)
        subprocess.run(
            [
                "relion_run_motioncorr",
                "--i",
                "movies.star",
                "--o",
                "MC/",
                "--use_own",
                "--j",
                "1",
                "--patch_x",
                "1",
                "--patch_y",
                "1",
                "--dose_weighting",
                "--angpix",
                "1",
                "--voltage",
                "300",
                "--dose_per_frame",
                "4",
                "--bfactor",
                "150",
                "--skip_defect",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        folder.mkdir(exist_ok=True)
        shutil.copy(Path(tmp) / "MC" / "movie.mrc", folder / "movie_sum.mrc")
        shutil.copy(Path(tmp) / "MC" / "movie.star", folder / "movie.star")


def polishing_movie():
    """A 256^2 movie (1.5 A pixels, 16 frames of 2 e/A^2, seeded) of 9 particles of the bundled
    N-domain (box 64, random poses, defocus 1-2 um) with a drift and 2 px of local motion
    (``simulate.particle_movies``): the movie, the particles' rotations, defoci and positions,
    and the map."""
    import torch

    from cryomath.atoms import map_from_model, read_atoms
    from cryomath.ctf import CTF
    from cryomath.demo import BUNDLED_MODEL
    from cryomath.fourier.crop import crop_or_pad
    from cryomath.imaging import ParticleBatch, predict_images
    from cryomath.projection import prepare_volume
    from cryomath.simulate.movies import MovieSettings
    from cryomath.simulate.particle_movies import simulate_particle_movie
    from cryomath.so3.random import random_rotations

    volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), 1.5, None, margin_angstrom=12.0)
    volume = crop_or_pad(volume, (64, 64, 64))
    centres = torch.tensor([48, 120, 192])
    positions = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
    g = torch.Generator().manual_seed(0)
    rotations = random_rotations(9, generator=g, dtype=torch.float64)
    defocus = 10000 + 10000 * torch.rand(9, generator=g, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(rotations=rotations, pixel_size_angstrom=1.5,
                                       ctf=CTF(defocus, defocus, 0.0, 300.0, 2.7, 0.1),
                                       image_size=64)  # fmt: skip
    clean = predict_images(prepare_volume(volume, voxel_size_angstrom=1.5), batch)
    settings = MovieSettings(n_frames=16, dose_per_frame_e_per_a2=2.0, seed=5)
    movie = simulate_particle_movie(clean / clean.std() * 0.1, positions, (256, 256), 1.5,
                                    settings, 2.0)  # fmt: skip
    return movie, rotations, defocus, positions, volume


def relion_polishing(folder: Path) -> None:
    """RELION's own global motion correction, then ``relion_motion_refine`` (its defaults
    ``--s_vel 0.5 --s_div 5000 --s_acc 2``) of :func:`polishing_movie`, the true map as both
    half maps (FSC 0.99 everywhere): ``movie_tracks.star`` into ``folder``."""
    import shutil

    import numpy as np
    import pandas as pd

    from cryomath.io import (
        CTFParameters,
        ParticleTable,
        read_star,
        write_mrc,
        write_relion_movies_star,
        write_relion_star,
        write_star,
    )

    movie, rotations, defocus, positions, volume = polishing_movie()
    n = len(positions)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_mrc(tmp / "movie.mrc", movie.frames.float().numpy(), 1.5)
        write_mrc(tmp / "map.mrc", volume.float().numpy(), 1.5)
        write_relion_movies_star(tmp / "movies.star", ["movie.mrc"], 1.5)
        # RELION reads the particles' images only for their metadata
        write_mrc(tmp / "particles.mrcs", np.zeros((n, 64, 64), np.float32), 1.5)
        ctf = CTFParameters(defocus_u_angstrom=defocus.numpy(), defocus_v_angstrom=defocus.numpy(),
                            defocus_angle_degrees=np.zeros(n), voltage_kv=np.full(n, 300.0),
                            spherical_aberration_mm=np.full(n, 2.7),
                            amplitude_contrast=np.full(n, 0.1), phase_shift_degrees=np.zeros(n),
                            bfactor_angstrom2=np.zeros(n), scale=np.ones(n))  # fmt: skip
        extra = pd.DataFrame({"rlnMicrographName": "MC/movie.mrc",
                              "rlnCoordinateX": positions[:, 0].double().numpy(),
                              "rlnCoordinateY": positions[:, 1].double().numpy(),
                              "rlnImageName": [f"{i + 1:06d}@particles.mrcs"
                                               for i in range(n)]})  # fmt: skip
        table = ParticleTable(n=n, rotations=rotations.numpy(), origins_angstrom=np.zeros((n, 2)),
                              ctf=ctf, pixel_size_angstrom=1.5, image_size=64, optics_group=1,
                              random_subset=np.arange(n) % 2 + 1, extra=extra)  # fmt: skip
        write_relion_star(table, tmp / "particles.star")
        blocks = read_star(tmp / "particles.star")
        blocks["optics"]["rlnMicrographOriginalPixelSize"] = 1.5
        write_star(tmp / "particles.star", blocks, force=True)
        k = np.arange(33)
        fsc = pd.DataFrame({"rlnSpectralIndex": k, "rlnResolution": k / 96,
                            "rlnAngstromResolution": 96 / np.maximum(k, 1),
                            "rlnFourierShellCorrelationCorrected": np.full(33, 0.99)})  # fmt: skip
        general = pd.DataFrame({"rlnFinalResolution": [3.0]})
        write_star(tmp / "postprocess.star", {"general": general, "fsc": fsc})
        for command in (
            "relion_run_motioncorr --i movies.star --o MC/ --use_own --j 1 --patch_x 1 "
            "--patch_y 1 --dose_weighting --angpix 1.5 --voltage 300 --dose_per_frame 2 "
            "--bfactor 150 --skip_defect",
            "relion_motion_refine --i particles.star --f postprocess.star --m1 map.mrc --m2 "
            "map.mrc --corr_mic MC/corrected_micrographs.star --o Polish/ --fdose 2 --s_vel 0.5 "
            "--s_div 5000 --s_acc 2 --j 1",
        ):
            subprocess.run(command.split(), cwd=tmp, check=True, capture_output=True)
        folder.mkdir(exist_ok=True)
        shutil.copy(tmp / "Polish" / "MC" / "movie_tracks.star", folder / "movie_tracks.star")


def relion_white_noise(folder: Path) -> None:
    """``relion_project --add_noise --white_noise 0.5`` of a map of zeros (32^3, 3 A) at the 24
    poses of ``shared/data/relion313_reference/poses_ctf_24.star``: RELION's white noise alone,
    ``folder/relion_white_noise_0.5.mrcs``."""
    import numpy as np

    from cryomath.io import write_mrc

    poses = (
        Path(__file__).resolve().parents[3] / "shared/data/relion313_reference/poses_ctf_24.star"
    )
    folder.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_mrc(f"{tmp}/zero.mrc", np.zeros((32, 32, 32), np.float32), 3.0)
        subprocess.run(["relion_project", "--i", f"{tmp}/zero.mrc", "--o", f"{tmp}/noise",
                        "--angpix", "3", "--ang", str(poses), "--add_noise", "--white_noise",
                        "0.5"], check=True, capture_output=True)  # fmt: skip
        (folder / "relion_white_noise_0.5.mrcs").write_bytes(Path(f"{tmp}/noise.mrcs").read_bytes())


def mask_map():
    """A map of 40^3 (2 A): six Gaussian blobs (sd 1.5-3 px) within 9 px of the centre, seeded,
    as float32: the input of ``relion_mask_create`` for ``tests/test_masks_relion.py``."""
    import torch

    from cryomath.fourier.grids import real_space_grid

    g = torch.Generator().manual_seed(3)
    grid = real_space_grid((40, 40, 40), dtype=torch.float64)
    volume = torch.zeros(40, 40, 40, dtype=torch.float64)
    for _ in range(6):
        centre = (torch.rand(3, generator=g, dtype=torch.float64) - 0.5) * 18
        sd = 1.5 + 1.5 * float(torch.rand(1, generator=g, dtype=torch.float64))
        volume += torch.exp(-((grid - centre) ** 2).sum(-1) / (2 * sd**2))
    return volume.float()


MASK_CASES = {"3_6": ("0.5", "3", "6"), "2.5_4.5": ("0.3", "2.5", "4.5")}  # threshold, extend, edge


def relion_mask_create(folder: Path) -> None:
    """``relion_mask_create --ini_threshold T --extend_inimask E --width_soft_edge W`` of
    :func:`mask_map`, for each of ``MASK_CASES``: ``folder/mask_{case}.mrc``."""
    from cryomath.io import write_mrc

    folder.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_mrc(f"{tmp}/map.mrc", mask_map().numpy(), 2.0)
        for case, (threshold, extend, edge) in MASK_CASES.items():
            subprocess.run(["relion_mask_create", "--i", f"{tmp}/map.mrc", "--o",
                            str(folder / f"mask_{case}.mrc"), "--ini_threshold", threshold,
                            "--extend_inimask", extend, "--width_soft_edge", edge],
                           check=True, capture_output=True)  # fmt: skip


if __name__ == "__main__":
    table = {"source": "relion_refine --sym G --print_symmetry_ops (RELION 3.1.3, Debian)"}
    table["groups"] = {g: relion_ops(g) for g in GROUPS}
    here = Path(__file__).parent
    (here / "relion_symmetry_ops.json").write_text(json.dumps(table, indent=1) + "\n")
    for group in ("D2", "I1"):
        subprocess.run(
            [
                "relion_particle_symmetry_expand",
                "--i",
                str(here / "relion_expand_input.star"),
                "--o",
                str(here / f"relion_expand_{group}.star"),
                "--sym",
                group,
            ],
            check=True,
            capture_output=True,
        )
    relion_dose_weighting(here / "dose_weighting")
    relion_polishing(here / "polishing")
    relion_white_noise(here / "white_noise")
    relion_mask_create(here / "mask_create")
