import os
from pathlib import Path

import pytest

# Real data written by other packages (read-only; see its README). CI clones the project with
# shared/ beside it; a missing folder is an error, not a skip. CRYOMATH_SHARED_DATA points
# elsewhere (the GPU check carries the few files its tests read: bench/gpu-check.sh).
DATA = Path(
    os.environ.get("CRYOMATH_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
REFERENCE = DATA.parent / "reference"


@pytest.fixture(scope="session")
def data() -> Path:
    assert DATA.is_dir(), f"test data not found at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Small inputs for every command (the edge-case tests): a 16^3 map of 1UAO at 2 A, eight
    particles simulated from it, their half maps, their 2-D classification, and a folder with
    one map."""
    from cryomath.cli import main

    root = tmp_path_factory.mktemp("tiny")
    model = DATA / "map_model" / "1uao.pdb"
    sim = root / "sim"
    args = ["--n", "8", "--box-size", "16", "--pixel-size", "2", "--out", str(sim)]
    assert main(["simulate", str(model), *args, "--snr", "1", "--json"]) == 0
    rec = root / "rec"
    assert main(["reconstruct", str(sim / "particles.star"), "--out", str(rec), "--halves",
                 "--json"]) == 0  # fmt: skip
    c2d = root / "c2d"
    assert main(["class2d", str(sim / "particles.star"), "--classes", "2", "--iterations", "1",
                 "--out", str(c2d), "--json"]) == 0  # fmt: skip
    movie = _tiny_movie(sim, rec / "half1.mrc")
    folder = root / "maps"
    folder.mkdir()
    (folder / "half1.mrc").write_bytes((rec / "half1.mrc").read_bytes())
    return {
        "model": model,
        "star": sim / "particles.star",
        "cs": sim / "particles.cs",
        "stack": sim / "particles_000.mrcs",
        "half1": rec / "half1.mrc",
        "half2": rec / "half2.mrc",
        "maps": folder,
        "classified": c2d / "particles.star",
        **movie,
    }


def _tiny_movie(sim: Path, reference: Path) -> dict[str, Path]:
    """A 4-frame movie (64^2 at 2 A) of the eight simulated particles at their poses, with a
    movies STAR and the particles STAR with their coordinates on it (for ``polish``)."""
    import numpy as np
    import torch

    from cryomath.imaging import iter_batches, predict_images
    from cryomath.io import (
        read_mrc,
        read_particles,
        read_star,
        write_mrc,
        write_relion_movies_star,
        write_star,
    )
    from cryomath.projection import prepare_volume
    from cryomath.simulate.movies import MovieSettings
    from cryomath.simulate.particle_movies import simulate_particle_movie

    volume, _ = read_mrc(reference, np.float64)
    spectrum = prepare_volume(torch.from_numpy(volume), voxel_size_angstrom=2.0)
    table = read_particles(sim / "particles.star")
    batch = next(iter_batches(table, read_images=False, in_table_order=True))
    images = predict_images(spectrum, batch)
    images = images / images.std() * 0.1
    grid = torch.tensor([12, 32, 52])
    positions = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)[:8]
    settings = MovieSettings(n_frames=4, dose_per_frame_e_per_a2=2.0, seed=1)
    movie = simulate_particle_movie(images, positions, (64, 64), 2.0, settings, 0.5)
    write_mrc(sim / "movie.mrc", movie.frames.float().numpy(), 2.0)
    write_relion_movies_star(sim / "movies.star", ["movie.mrc"], 2.0)
    blocks = read_star(sim / "particles.star")
    blocks["particles"]["rlnMicrographName"] = "movie.mrc"
    blocks["particles"]["rlnCoordinateX"] = positions[:, 0].double().numpy()
    blocks["particles"]["rlnCoordinateY"] = positions[:, 1].double().numpy()
    write_star(sim / "movie_particles.star", blocks)
    return {"movies": sim / "movies.star", "movie_particles": sim / "movie_particles.star"}
