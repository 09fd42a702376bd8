"""Orchestration: work on files (particle stacks, shards, resumable runs, folders of maps) and
over Dask workers, on top of the compute packages; the CLI and the demo call these.

* :func:`dask_client`: where work runs (in process, a local cluster, a scheduler address).
* :func:`read_volume`: the map a simulation or projection starts from (a map or a model);
  :func:`read_volumes`: several (heterogeneity), or a trajectory between two models.
* :func:`project_particles`: projections of a map at a particle file's poses, to a stack.
* :func:`reconstruct_particles`: half maps, full map and FSC of a particle file, in one
  process or over Dask workers (partial Fourier sums added in a tree).
* :func:`simulate_dataset`: a simulated dataset as stack shards, STAR and ``.cs`` files, with
  resume and one Dask task per shard.
* :func:`search_maps`, :func:`read_fit_pair`, :func:`fit_rows`, :func:`maps_in_folder`: map
  fitting on files and folders.
"""

from cryomath.pipelines.distributed import dask_client
from cryomath.pipelines.map_search import (
    fit_rows,
    maps_in_folder,
    read_fit_input,
    read_fit_pair,
    search_maps,
)
from cryomath.pipelines.projection import project_particles
from cryomath.pipelines.reconstruction import merge_halves, reconstruct_particles
from cryomath.pipelines.simulation import read_conformations, simulate_dataset, write_shard
from cryomath.pipelines.tables import expand_symmetry
from cryomath.pipelines.volumes import read_volume, read_volumes

__all__ = [
    "dask_client",
    "expand_symmetry",
    "fit_rows",
    "maps_in_folder",
    "merge_halves",
    "project_particles",
    "read_conformations",
    "read_fit_input",
    "read_fit_pair",
    "read_volume",
    "read_volumes",
    "reconstruct_particles",
    "search_maps",
    "simulate_dataset",
    "write_shard",
]
