"""Scale-out: Dask (a LocalCluster of 2 worker processes) gives the single-process results;
a worker killed mid-run and an interrupted run still end complete and identical; memory does
not grow with the number of particles."""

import filecmp
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath.atoms import map_from_model, read_atoms
from cryomath.cli import main
from cryomath.demo import BUNDLED_MODEL
from cryomath.errors import InvalidInputError, OutputWriteError
from cryomath.io import read_particles
from cryomath.pipelines import reconstruct_particles, simulate_dataset
from cryomath.simulate import SimulationSettings
from tests.conftest import DATA

distributed = pytest.importorskip("dask.distributed", reason="needs the [dask] extra")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as c,
    ):  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def volume():
    return map_from_model(read_atoms(BUNDLED_MODEL), 3.0, None, margin_angstrom=5.0)[0]


def _settings(n=2048, shard=512):
    return SimulationSettings(n_particles=n, pixel_size_angstrom=3.0, shard_size=shard, seed=7)


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_simulation_on_dask_is_bit_identical(client, volume, tmp_path):
    simulate_dataset(volume, tmp_path / "local", _settings())
    simulate_dataset(volume, tmp_path / "dask", _settings(), client=client)
    _same_files(tmp_path / "local", tmp_path / "dask")


def test_reconstruction_on_dask_equals_the_single_process_one(client, volume, tmp_path):
    simulate_dataset(volume, tmp_path, _settings())
    table = read_particles(tmp_path / "particles.star")
    local = reconstruct_particles(table)
    spread = reconstruct_particles(table, client=client, chunk_size=300)  # 7 chunks, a tree
    for key in ("half1", "half2", "full"):
        a, b = getattr(local, key), getattr(spread, key)
        error = float((a - b).abs().max() / a.abs().max())
        assert error <= 1e-6  # measured 3e-16
    torch.testing.assert_close(local.fsc.fsc, spread.fsc.fsc, rtol=1e-6, atol=1e-9)


def test_search_maps_on_dask_ranks_as_in_one_process(tmp_path, capsys):
    folder = tmp_path / "maps"
    folder.mkdir()
    for name in ("emd_3488.mrc", "1ake_molmap45.mrc"):
        (folder / name).symlink_to(DATA / "map_model" / name)
    query = str(DATA / "map_model" / "5me2.pdb")
    args = ["search-maps", query, str(folder), "--resolution", "4", "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr()[0])["ranking"]
    assert main([*args, "--scheduler", "local:2"]) == 0
    spread = json.loads(capsys.readouterr()[0])["ranking"]
    assert [Path(r["map"]).name for r in spread] == [Path(r["map"]).name for r in local]
    # the match: the same fit; the unrelated map's best score is one of many near-equal noise
    # peaks, which a worker's other thread count (float32 sums in another order) may swap
    assert local[0]["normalized_z_score"] == pytest.approx(spread[0]["normalized_z_score"], 1e-5)
    np.testing.assert_allclose(local[0]["rotation_matrix"], spread[0]["rotation_matrix"], atol=1e-5)
    assert abs(local[1]["normalized_z_score"] - spread[1]["normalized_z_score"]) < 0.1


def test_a_worker_killed_mid_run_leaves_a_complete_identical_dataset(client, tmp_path):
    settings = SimulationSettings(n_particles=4096, pixel_size_angstrom=1.5, shard_size=256, seed=3)
    volume = map_from_model(read_atoms(BUNDLED_MODEL), 1.5, None, margin_angstrom=5.0)[0]
    simulate_dataset(volume, tmp_path / "local", settings)
    out = tmp_path / "dask"
    errors = []

    def run():
        try:
            simulate_dataset(volume, out, settings, client=client)
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.time() + 60
    while not list(out.glob("particles_*.mrcs")) and time.time() < deadline:
        time.sleep(0.01)
    victim = next(iter(client.run(os.getpid).values()))
    os.kill(victim, signal.SIGKILL)
    written_when_killed = len(list(out.glob("particles_*.mrcs")))
    worker.join(timeout=180)
    assert not errors and not worker.is_alive()
    assert 1 <= written_when_killed < 16  # the worker died in the middle of the run
    assert victim not in client.run(os.getpid).values()  # the nanny started a new process
    _same_files(tmp_path / "local", out)


def test_an_interrupted_run_leaves_only_complete_files_and_resumes(volume, tmp_path):
    settings = _settings(n=2048, shard=512)
    simulate_dataset(volume, tmp_path / "whole", settings)
    out = tmp_path / "interrupted"
    done = [0]

    def interrupt(k):
        done[0] += k
        if done[0] >= 1280:  # in the middle of the third shard
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(volume, out, settings, progress=interrupt)
    left = sorted(p.name for p in out.iterdir())
    assert left == ["particles_000.mrcs", "particles_001.mrcs", "simulation.json"]
    with pytest.raises(InvalidInputError, match="cannot resume"):
        simulate_dataset(volume, out, _settings(n=2048, shard=256), resume=True)
    summary = simulate_dataset(volume, out, settings, resume=True)
    assert summary["resumed_shards"] == 2
    _same_files(tmp_path / "whole", out)


def test_unwritable_output_gives_one_clear_error(volume, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputWriteError, match="cannot create the output folder"):
        simulate_dataset(volume, blocker / "out", _settings(n=256, shard=256))
    model = str(DATA / "map_model" / "6vyb_Ndom.pdb")
    args = ["simulate", model, "--n", "8", "--box-size", "32", "--out", str(blocker / "x")]
    assert main(args) == 1
    assert capsys.readouterr()[1].strip().startswith("cryomath: error: cannot create")


def test_a_bad_scheduler_value_is_one_clear_error(tmp_path, capsys):
    model = str(DATA / "map_model" / "6vyb_Ndom.pdb")
    args = ["simulate", model, "--n", "8", "--box-size", "32", "--out", str(tmp_path / "x")]
    assert main([*args, "--scheduler", "local:many"]) == 1
    assert capsys.readouterr()[1].strip() == (
        "cryomath: error: --scheduler 'local:many': use local, local:N or an address"
    )
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_refinement_passes_on_dask_equal_the_single_process_ones(client, volume, tmp_path):
    """``refine --scheduler``: an iteration whose expectation passes run on two workers (chunks
    of one batch, their sums added in a tree) gives the poses and half maps of the in-process
    iteration (float32 sums added in another order: 1e-4); so do two local iterations after it,
    with their per-group passes and leave-out maps."""
    import copy

    from cryomath.inference.refine import RefineSettings, refine_iteration, start_refinement
    from cryomath.inference.refine_rules import sampling_for
    from cryomath.pipelines.expectation import dask_expectation

    simulate_dataset(volume, tmp_path, _settings(n=128, shard=128))
    table = read_particles(tmp_path / "particles.star")
    settings = RefineSettings(max_iterations=1, batch_size=32, max_significant=16, healpix_order=1)
    local = start_refinement(table, volume, 3.0, settings)
    spread = copy.deepcopy(local)
    refine_iteration(table, local, settings)
    refine_iteration(table, spread, settings, passes=dask_expectation(client, chunk_size=32))
    same = np.abs(local.particles.rotations - spread.particles.rotations).max((1, 2)) < 1e-6
    assert same.mean() >= 0.98
    error = float((local.maps - spread.maps).abs().max() / local.maps.abs().max())
    assert error <= 1e-4
    assert np.allclose(local.particles.log_likelihood, spread.particles.log_likelihood, rtol=1e-4)
    # local searches, each image against its half's map without its group (the second
    # iteration scores against the first's leave-out maps)
    n = volume.shape[-1]
    for state in (local, spread):
        state.sampling = sampling_for(settings, 3, 1.0, 0.5, state.band_shell, n, 3.0)
    for _ in range(2):
        refine_iteration(table, local, settings)
        refine_iteration(table, spread, settings, passes=dask_expectation(client, chunk_size=32))
    same = np.abs(local.particles.rotations - spread.particles.rotations).max((1, 2)) < 1e-6
    assert same.mean() >= 0.98 and local.left_out.shape == (2, 8, n, n, n)
    scale = local.left_out.abs().max()
    assert float((local.left_out - spread.left_out).abs().max() / scale) <= 1e-4
