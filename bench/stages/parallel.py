"""Train (and evaluate) several seeds of one method at once: ``train.parallel_runs`` workers.

Small models do not use many cores well: on this 2-core machine one training step of the
default model takes 51 ms with two threads, while two single-threaded trainings side by side
take about 70 ms each (35 ms per step for the pair). So the train stage, which trains every
seed of a method (:mod:`bench.stages.train`), hands its seeds to a pool of
``train.parallel_runs`` processes with ``cores // parallel_runs`` threads each.

- Workers are *spawned* (not forked: a fork after the stack's imports can inherit OpenMP and
  MMEngine state) and pay the imports once each, in parallel.
- Each worker runs :func:`bench.stages.train.run_one`: skipping, resuming and divergence
  handling are per seed, as in one process. A seed's result depends only on its own thread
  count, never on which seed trains beside it (every run is deterministic on its own).
- A worker dies with the stage (Linux ``PR_SET_PDEATHSIG``): a killed ``dvc repro`` never
  leaves an orphan training that the next one would race with.
"""
from __future__ import annotations

import os
import signal
from typing import Callable

from bench.params import Params


#: Environment variables that size the numeric libraries' thread pools.
_THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_run(parallel: int) -> int:
    return max(1, usable_cores() // max(parallel, 1))


def _die_with_parent() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker may outlive a killed stage
        pass


def _init_worker(threads: int) -> None:
    _die_with_parent()
    import torch
    torch.set_num_threads(threads)
    import bench
    bench.register_modules()


def _call(fn: Callable[[Params, str, int], dict], params: Params, method: str,
          seed: int) -> dict:
    return fn(params, method, seed)


def train_seeds(params: Params, method: str, seeds: list[int],
                run_one: Callable[[Params, str, int], dict],
                what: str = 'train') -> dict[int, dict]:
    """{seed: run_one(params, method, seed)} for ``seeds``: in this process one after another,
    or in ``train.parallel_runs`` spawned workers when that is > 1 and there is more than one
    seed. ``run_one`` must be a module-level function (workers import it by name)."""
    n = min(params.train.parallel_runs, len(seeds))
    if n <= 1 or params.train.launcher != 'none':
        return {s: run_one(params, method, s) for s in seeds}
    import multiprocessing
    threads = threads_per_run(n)
    print(f'{what} {method}: {len(seeds)} runs, {n} at a time ({threads} thread'
          f'{"s" * (threads != 1)} each)', flush=True)
    ctx = multiprocessing.get_context('spawn')
    # The thread pools of OpenMP, MKL and OpenBLAS are sized when a worker loads them (before
    # its initializer runs): only the environment it starts with limits them. Measured here:
    # 115-125 ms per training step with torch.set_num_threads(1) alone, 65-95 ms with these.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(threads) for k in _THREAD_VARS})
    try:
        # not multiprocessing.Pool: its workers are daemonic, and a daemonic process may not
        # start the DataLoader's own workers (train.workers > 0, as in the study profile)
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = [pool.submit(_call, run_one, params, method, s) for s in seeds]
            results = [f.result() for f in futures]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return dict(zip(seeds, results))
