"""The expectation pass over Dask workers (``--scheduler`` of ``refine``, ``class2d`` and
``class3d``): the particles of a pass are cut into chunks, each task runs
``inference.expectation_pass`` on its chunk and returns its M-step sums and its particles'
new state; the sums are added pairwise in a tree on the cluster, the states written back.
The result equals the single-process pass up to the order of floating-point additions.

Each task builds the pass's projection tables itself (a global search's few seconds per
chunk): chunks are large (by default two per worker).
"""

import copy
import operator

import numpy as np

from cryomath.errors import InvalidInputError
from cryomath.inference.expectation import PassSums, expectation_pass


def _chunk_pass(table, halves, references, state, sampling, noise, class_prior, options):
    """A Dask task: one chunk's pass (its own table, halves and state); returns its sums on
    the CPU (they may be added on a machine without the worker's device) and its state."""
    sums = PassSums({})
    expectation_pass(table, np.arange(table.n), halves, references, state, sampling, noise, sums,
                     image_class_prior=class_prior, **options)  # fmt: skip
    for key, acc in sums.accumulators.items():
        sums.accumulators[key] = acc.to("cpu")
    return sums, state


def _merged(a: PassSums, b: PassSums) -> PassSums:
    """A new ``a + b`` (the inputs untouched, so a retried step is safe)."""
    out = copy.deepcopy(a)
    out.merge(b)
    return out


def dask_expectation(client, chunk_size: int | None = None):
    """An ``expectation_pass`` (same signature) whose work runs on ``client`` 's workers in
    chunks of ``chunk_size`` particles (default: two chunks per worker, at least a batch)."""
    from dask.distributed import as_completed

    def run(table, rows, halves, references, state, sampling, noise, sums, *, progress=None,
            image_class_prior=None, **options):  # fmt: skip
        size = chunk_size
        if size is None:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            size = max(options.get("batch_size", 256), -(-len(rows) // (2 * workers)))
        if size < 1:
            raise InvalidInputError(f"chunk_size must be at least 1, got {size}")
        chunks = [rows[s : s + size] for s in range(0, len(rows), size)]
        prior = [None if image_class_prior is None else image_class_prior[c] for c in chunks]
        futures = []
        for c, p in zip(chunks, prior, strict=True):
            futures.append(client.submit(_chunk_pass, table.subset(c), halves[c], references,
                                         state.take(c), sampling, noise, p, options, retries=2,
                                         pure=False))  # fmt: skip
        sizes = {f.key: len(c) for f, c in zip(futures, chunks, strict=True)}
        for future in as_completed(futures):
            if progress is not None:
                progress(sizes[future.key])
        pending = [client.submit(operator.itemgetter(0), f, pure=False) for f in futures]
        while len(pending) > 1:  # tree reduction: add pairs until one sum is left
            pairs = zip(pending[::2], pending[1::2], strict=False)
            merged = [client.submit(_merged, a, b, retries=2, pure=False) for a, b in pairs]
            pending = merged + ([pending[-1]] if len(pending) % 2 else [])
        if pending:
            sums.merge(pending[0].result())
        for c, future in zip(chunks, futures, strict=True):
            state.put(c, future.result()[1])

    return run


def pass_runner(client):
    """``expectation_pass`` in this process (``client`` None), else on ``client`` 's workers."""
    return expectation_pass if client is None else dask_expectation(client)
