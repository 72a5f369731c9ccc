"""Stage ``train@<method>``: every seed of ``params.yaml`` ``seeds`` of one formulation, one
after another in one process (one fresh MMEngine ``Runner`` per seed), so the stack's imports
are paid once per method. ``python -m bench train --method M --seed S`` trains one seed.

Outputs (layout: :mod:`bench.stages.common`): ``runs/train/<method>/seed<k>/`` (checkpoints,
``final.pth`` = weights of the last epoch, MMEngine logs, ``status.json``, ``config.py``,
``fingerprint.txt``), ``runs/live/<method>/seed<k>/`` (DVCLive per-epoch curves) and
``runs/snapshots/<method>/seed<k>/`` (heatmaps at ``eval.snapshot_epochs``). The folders of
seeds no longer in ``seeds`` are removed (whole-method runs only).

DVC re-runs the whole method stage when any of its inputs changes (a new seed included), so
each seed decides for itself: a seed whose work dir holds a finished run (``status.json`` ok
and ``final.pth``) under the same ``training_key`` (resolved config, data manifest, code,
library versions) is skipped without building a Runner. Otherwise, when the work dir holds a
complete checkpoint (named by MMEngine's ``last_checkpoint``) written under the same key,
training resumes from it; any other work dir (other inputs, no complete checkpoint) is never
resumed from: it is moved aside to ``seed<k>.stale/`` and the seed starts over.
A diverging seed (non-finite loss) stops with a one-line error and records
``status.json = {"status": "diverged", ...}``; the stage goes on with the next seed and exits
0, and the report lists the run as failed instead of using it.
"""
from __future__ import annotations

import gc
import json
import resource
import shutil
import time
import traceback
from pathlib import Path
from typing import Optional


from bench.quiet import quiet_logger
from bench.config import build_config
from bench.console import (PROGRESS_FILE, StageProgress, build_runner, latest_log,
                           read_progress, report_failure, to_log)
from bench.engine.hooks import DivergenceError
from bench.errors import USER_ERRORS, RunError
from bench.params import Params
from bench.runs import TRAIN_KINDS, RunPaths, method_lr, prune_seeds, seed_key
from bench.stages.common import (check_run, data_fingerprint, runner_names, training_key,
                                 write_json)
from bench.stages.run_config import RUN_CONFIG, save_run_config



def run(params: Params, method: str, seed: Optional[int] = None,
        geometry: Optional[str] = None) -> dict[str, dict]:
    """Train every run of ``method``: each seed of ``params.seeds`` (or only ``seed``) at each
    geometry of the study (``model``'s own and every ``sweep`` point; or only ``geometry``
    when ``seed`` is given); returns {run key: status}. A diverged run does not stop the
    others."""
    check_run(params, method, seed)
    if seed is None:
        for gone in prune_seeds(method, params.seeds, TRAIN_KINDS,
                                geometries=params.geometries()):
            print(f'train {method}: removed {gone} (seed or geometry no longer in params.yaml)',
                  flush=True)
    params.at_geometry(geometry)  # an unknown geometry stops here, in one line
    keys = ([(g, s) for g in params.geometries() for s in params.seeds] if seed is None
            else [(geometry, seed)])
    runs = {RunPaths(method, s, geometry=g).name: (g, s) for g, s in keys}
    # the runs trained before this stage under today's keys: each key is computed once here
    before = {k: finished(params, method, k[1], k[0]) for k in keys}
    with StageProgress(f'train {method}', list(runs), units=params.train.epochs, unit='epoch',
                       poll=_poller(method, runs, before)):
        if params.train.parallel_runs > 1 and len(keys) > 1 and params.train.launcher == 'none':
            from bench.stages.parallel import train_seeds
            for k in keys:
                if before[k] is not None:
                    print(f'train {RunPaths(method, k[1], geometry=k[0]).name}: already trained '
                          f'under the same training key ({before[k].get("epochs")} epochs): '
                          f'skipped', flush=True)
            done = dict(before)
            done.update(train_seeds(params, method, [k for k in keys if before[k] is None],
                                    run_key))
        else:
            done = {k: run_key(params, method, k) for k in keys}
    failed = [RunPaths(method, s, geometry=g).name for g, s in keys
              if done[(g, s)].get('status') == 'failed']
    if failed:
        raise RunError(f'train {method}: {len(failed)} of {len(keys)} runs failed '
                       f'({", ".join(failed)}; their logs are named above); the finished runs '
                       f'are kept: fix the cause and run the stage again')
    return {seed_key(s, g): done[(g, s)] for g, s in keys}


def _poller(method: str, runs: dict, before: dict):
    """``poll(run) -> (epochs done, finished, last val PCK)`` for the progress display: a run
    finished before the stage started (``before``: its status under today's training key, by
    (geometry, seed)) counts as done; then its ``status.json`` written during the stage marks
    it finished, and ``progress.json`` (written by ``ProgressHook``, in whichever process
    trains it, from the start of its training) counts its epochs."""
    started = time.time()

    def poll(name: str) -> tuple:
        g, s = runs[name]
        work = RunPaths(method, s, geometry=g).train
        progress = read_progress(work, since=started - 1)
        status = work / 'status.json'
        done = before[(g, s)] is not None or (status.is_file()
                                              and status.stat().st_mtime >= started - 1)
        return progress.get('epoch'), done, progress.get('val_pck')
    return poll


def run_key(params: Params, method: str, key: tuple[Optional[str], int]) -> dict:
    """:func:`run_one` of run key (geometry, seed): what the parallel workers call."""
    geometry, seed = key
    return run_one(params, method, seed, geometry)


def run_config(params: Params, method: str, seed: int, geometry: Optional[str] = None):
    """(config, paths, training key) of run (``method``, ``seed``, ``geometry``): the resolved
    config, at the method's learning rate (:func:`bench.runs.method_lr`), with the hooks
    every run gets."""
    check_run(params, method, seed)
    paths = RunPaths(method, seed, geometry=geometry)
    cfg = build_config(params.at_geometry(geometry), method, seed, work_dir=paths.train,
                       lr=method_lr(params, method))
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='EpochSeedHook', seed=seed),
        dict(type='DVCLiveLoggerHook', live_dir=str(paths.live)),
        dict(type='HeatmapSnapshotHook', out_dir=str(paths.snapshots),
             epochs=list(params.eval.snapshot_epochs), num_images=params.eval.snapshot_images),
        dict(type='ProgressHook', out_file=str(paths.train / PROGRESS_FILE)),
    ]
    if params.train.divergence_guard:
        cfg.custom_hooks.append(dict(type='DivergenceGuardHook', run_name=paths.name))
    return cfg, paths, training_key(cfg.to_dict())


def finished(params: Params, method: str, seed: int,
             geometry: Optional[str] = None) -> Optional[dict]:
    """The status of run (``method``, ``seed``, ``geometry``) if it is already trained under
    today's training key (so the stage skips it), else None."""
    _, paths, key = run_config(params, method, seed, geometry)
    return _completed_run(paths.train, key)


def run_one(params: Params, method: str, seed: int, geometry: Optional[str] = None) -> dict:
    """Train run (``method``, ``seed``, ``geometry``) with a fresh Runner: skipped when already
    finished under the same training key, resumed from a complete checkpoint of the same key,
    else trained from scratch (see the module docstring). Returns its status."""
    paths = RunPaths(method, seed, geometry=geometry)
    try:
        return _run_one(params, method, seed, geometry)
    except USER_ERRORS:  # bad params, data or runs: one line for the whole stage, as ever
        raise
    except Exception as exc:  # anything else fails this run only: reported, the stage goes on
        log = train_log(paths)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, 'a') as f:
            f.write(traceback.format_exc())
        report_failure(paths.name, f'{type(exc).__name__}: {exc}', log)
        lines = str(exc).strip().splitlines()
        return dict(status='failed', message=lines[-1] if lines else type(exc).__name__)


def train_log(paths: RunPaths) -> Path:
    """The MMEngine log of a run's latest training (``<work>/<timestamp>/<timestamp>.log``), or
    ``<work>/failure.log`` when it failed before MMEngine wrote one."""
    return latest_log(paths.train) or paths.train / 'failure.log'


def _run_one(params: Params, method: str, seed: int, geometry: Optional[str] = None) -> dict:
    cfg, paths, key = run_config(params, method, seed, geometry)
    work = paths.train

    rank = 0
    distributed = params.train.launcher in ('pytorch', 'slurm')
    if distributed:
        from bench.engine.dist import init_distributed
        rank = init_distributed(cfg, params.train.launcher)
    done, checkpoint = None, None
    if rank == 0:
        done = _completed_run(work, key)
        if done is None:
            checkpoint = _prepare_work_dir(paths, key)
        if done is None or not (work / RUN_CONFIG).is_file():
            save_run_config(cfg, work)  # what evaluate scores the model under (run_config.py)
    if distributed:
        import torch.distributed as torch_dist
        shared = [done, checkpoint]
        torch_dist.broadcast_object_list(shared, src=0)  # every rank skips / resumes, or none
        done, checkpoint = shared
    if done is not None:
        if rank == 0:
            print(f'train {paths.name}: already trained under the same training key '
                  f'({done.get("epochs")} epochs): skipped', flush=True)
        return done
    resume = checkpoint is not None
    cfg.resume = resume
    if resume:  # named explicitly: MMEngine's own pointer holds an absolute path, stale once
        cfg.load_from = checkpoint  # the checkout is moved (a config's load_from stays otherwise)
    runner_names(cfg, paths, 'train')

    from bench.engine.safe_load import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()
    runner, log_file = build_runner(cfg)
    quiet_logger(runner.logger)
    # a work dir of the same key with a status but no final.pth (say, deleted by hand) resumes
    # from its last epoch and trains nothing: its recorded time and memory stay those of the
    # real training, not those of this process
    finished = _finished_status(work) if resume else None
    start = time.perf_counter()
    try:
        try:
            with to_log(log_file):  # the COCO evaluator prints its tables
                runner.train()
        except DivergenceError as exc:
            status = dict(status='diverged', message=str(exc))
            if runner.rank == 0:
                write_json(work / 'status.json', status)
                report_failure(paths.name, str(exc), log_file)
            return status
        if runner.rank != 0:
            return dict(status='ok')
        _export_final(runner, work)
        from bench.evaluation.model_cost import find_scalars, train_step_ms_from_scalars
        scalars = find_scalars(work)
        status = dict(status='ok', epochs=params.train.epochs, resumed=resume,
                      lr=cfg.optim_wrapper['optimizer']['lr'],
                      # median seconds per iteration of the last epoch (MMEngine's `time`)
                      step_ms=(round(train_step_ms_from_scalars(scalars), 2)
                               if scalars is not None else None),
                      wall_s=round(time.perf_counter() - start, 1),
                      # the process's peak so far: with several seeds per process, the
                      # largest of this seed's and the earlier ones'
                      peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024, 1),
                      # which data it learnt from: evaluate refuses a run whose data changed
                      data=data_fingerprint())
        if finished is not None:
            status.update(wall_s=finished['wall_s'], peak_rss_mb=finished['peak_rss_mb'],
                          step_ms=finished.get('step_ms'))
        write_json(work / 'status.json', status)
        return status
    finally:  # the next seed's Runner starts from a clean slate (memory, open files)
        del runner
        gc.collect()


def _completed_run(work: Path, key: str) -> Optional[dict]:
    """The status of a run finished under training key ``key`` (``fingerprint.txt`` = key,
    ``status.json`` ok, ``final.pth`` present), or None."""
    stamp = work / 'fingerprint.txt'
    try:
        if stamp.read_text().strip() != key:
            return None
        status = json.loads((work / 'status.json').read_text())
    except (OSError, ValueError):
        return None
    if status.get('status') != 'ok' or not (work / 'final.pth').is_file():
        return None
    return status


def _finished_status(work) -> Optional[dict]:
    """``status.json`` of an earlier process that finished this run (same training key: the
    work dir was kept), or None if there is none or it is unreadable (the time of a process
    killed before the end is not recorded anywhere)."""
    try:
        status = json.loads((work / 'status.json').read_text())
    except (OSError, ValueError):
        return None
    numbers = [status.get(key) for key in ('wall_s', 'peak_rss_mb')]
    if status.get('status') != 'ok' or not all(isinstance(x, (int, float)) for x in numbers):
        return None
    return status


def _prepare_work_dir(paths: RunPaths, key: str) -> Optional[str]:
    """Keep the work dir ``paths.train`` for resuming when it holds a complete checkpoint
    written under the same training key; otherwise move it aside (``paths.stale``) and remove
    the run's curves and snapshots. Returns the checkpoint to resume from, or None."""
    work = paths.train
    stamp = work / 'fingerprint.txt'
    same = stamp.exists() and stamp.read_text().strip() == key
    checkpoint = _last_checkpoint(work) if same else None
    if work.exists() and checkpoint is None:
        shutil.rmtree(paths.stale, ignore_errors=True)
        work.rename(paths.stale)
        for folder in (paths.live, paths.snapshots):
            shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + '\n')
    return checkpoint


def _last_checkpoint(work) -> Optional[str]:
    """The complete checkpoint of ``work`` that MMEngine's ``last_checkpoint`` pointer names,
    looked up in ``work`` itself (the pointer's absolute path may be that of a moved checkout);
    None if there is none. MMEngine writes the pointer only after the checkpoint, so a process
    killed while saving leaves either no pointer (first epoch) or the previous one: an
    ``epoch_N.pth`` that no pointer names may be truncated and is never resumed from."""
    try:
        named = (work / 'last_checkpoint').read_text().strip()
    except OSError:
        return None
    if not named:  # killed while writing the pointer
        return None
    target = work / Path(named).name
    return str(target) if target.is_file() and target.stat().st_size > 0 else None


def _export_final(runner, work) -> None:
    """``final.pth``: the last epoch's weights alone (what ``evaluate`` loads)."""
    import torch
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    tmp = work / 'final.pth.tmp'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': runner.epoch}}, tmp)
    tmp.replace(work / 'final.pth')
