"""Scale-out on Dask: one way to name where work runs.

``scheduler``:
- ``None`` or ``""``: in this process (no Dask);
- ``"local"``: a ``LocalCluster`` here with one single-threaded worker process per core;
  ``"local:N"``: with ``N`` worker processes;
- anything else: the address of a running scheduler (``tcp://host:8786``), e.g. one started
  with ``dask scheduler`` and ``dask worker`` on cluster nodes, or by dask-jobqueue
  (``SLURMCluster(...).scheduler_address``). Workers need cryomath installed and the data
  paths visible (a shared filesystem).

Work is cut into tasks of particles (reconstruction), stack shards (simulation) or maps
(search); Dask schedules them, retries a task whose worker died, and gathers the results.
"""

import contextlib
import os
from collections.abc import Iterator

from cryomath.errors import InvalidInputError


@contextlib.contextmanager
def dask_client(scheduler: str | None) -> Iterator:
    """A ``dask.distributed.Client`` for ``scheduler`` (``None`` for in-process work), closed
    (and a local cluster shut down) on exit."""
    if not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InvalidInputError("--scheduler needs Dask: pip install 'cryomath[dask]'") from None
    if scheduler == "local" or scheduler.startswith("local:"):
        text = scheduler.partition(":")[2]
        if text and not (text.isdigit() and int(text) > 0):
            raise InvalidInputError(f"--scheduler {scheduler!r}: use local, local:N or an address")
        workers = int(text) if text else os.cpu_count() or 1
        # one thread per worker process: torch inside each task must not oversubscribe cores
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None, env=env) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise InvalidInputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client:
        yield client
