"""Stage ``train@<method>-<seed>``: one MMEngine ``Runner`` run of one formulation and seed.

Outputs in ``runs/<method>/seed<k>/``: ``train/`` (checkpoints, ``final.pth`` = weights of the
last epoch, MMEngine logs, ``status.json``), ``live/`` (DVCLive per-epoch curves) and
``snapshots/`` (heatmaps at ``eval.snapshot_epochs``).

Resuming: DVC keeps these folders (``persist: true``); when ``train/`` holds a complete
checkpoint (named by MMEngine's ``last_checkpoint``) of the *same* resolved config (same
fingerprint), training resumes from it. Any other work dir (another config, no complete
checkpoint) is never resumed from: it is moved aside to ``train.stale/``.
A diverging run (non-finite loss) stops with a one-line error and records
``status.json = {"status": "diverged", ...}``; the stage then exits 0 so that ``dvc repro``
goes on with the other runs, and the report lists the run as failed instead of using it.
"""
from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path
from typing import Optional

from bench._quiet import quiet_logger
from bench.config import build_config
from bench.engine.hooks import DivergenceError
from bench.params import Params
from bench.stages.common import check_run, fingerprint, run_dir, write_json


def run(params: Params, method: str, seed: int) -> dict:
    check_run(params, method, seed)
    out = run_dir(method, seed)
    work = out / 'train'
    cfg = build_config(params, method, seed, work_dir=work)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='EpochSeedHook', seed=seed),
        dict(type='DVCLiveLoggerHook', live_dir=str(out / 'live')),
        dict(type='HeatmapSnapshotHook', out_dir=str(out / 'snapshots'),
             epochs=list(params.eval.snapshot_epochs), num_images=params.eval.snapshot_images),
    ]
    if params.train.divergence_guard:
        cfg.custom_hooks.append(dict(type='DivergenceGuardHook', run_name=f'{method}/seed{seed}'))
    key = fingerprint(cfg.to_dict())

    rank = 0
    if params.train.launcher == 'pytorch':
        from bench.engine.dist import init_distributed
        rank = init_distributed(cfg)
    resume = _prepare_work_dir(out, key) if rank == 0 else False
    if params.train.launcher == 'pytorch':
        import torch.distributed as torch_dist
        flag = [resume]
        torch_dist.broadcast_object_list(flag, src=0)  # every rank resumes, or none
        resume = flag[0]
    cfg.resume = resume

    from bench.engine.safe_load import allow_mmengine_checkpoints
    from mmengine.runner import Runner
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    quiet_logger(runner.logger)
    # a re-run of a finished run (a dependency changed but the resolved config did not) resumes
    # from its last epoch and trains nothing: its recorded time and memory stay those of the real
    # training, not those of this process, which only loads the checkpoint
    finished = _finished_status(work) if resume else None
    start = time.perf_counter()
    try:
        runner.train()
    except DivergenceError as exc:
        status = dict(status='diverged', message=str(exc))
        if runner.rank == 0:
            write_json(work / 'status.json', status)
        print(f'error: {exc}', flush=True)
        return status
    if runner.rank == 0:
        _export_final(runner, work)
        status = dict(status='ok', epochs=params.train.epochs, resumed=resume,
                      wall_s=round(time.perf_counter() - start, 1),
                      peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024, 1))
        if finished is not None:
            status.update(wall_s=finished['wall_s'], peak_rss_mb=finished['peak_rss_mb'])
        write_json(work / 'status.json', status)
        return status
    return dict(status='ok')


def _finished_status(work) -> Optional[dict]:
    """``status.json`` of an earlier process that finished this run (same config: the work dir
    was kept), or None if there is none or it is unreadable (the time of a process killed before
    the end is not recorded anywhere)."""
    try:
        status = json.loads((work / 'status.json').read_text())
    except (OSError, ValueError):
        return None
    numbers = [status.get(key) for key in ('wall_s', 'peak_rss_mb')]
    if status.get('status') != 'ok' or not all(isinstance(x, (int, float)) for x in numbers):
        return None
    return status


def _prepare_work_dir(out, key: str) -> bool:
    """Keep ``train/`` for resuming when it was written by the same config; otherwise move it
    aside (``train.stale/``) with its curves and snapshots. Returns whether to resume."""
    work = out / 'train'
    stamp = work / 'fingerprint.txt'
    resume = _has_checkpoint(work) and stamp.exists() and stamp.read_text().strip() == key
    if work.exists() and not resume:
        stale = work.with_name('train.stale')
        shutil.rmtree(stale, ignore_errors=True)
        work.rename(stale)
        for sub in ('live', 'snapshots'):
            shutil.rmtree(out / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + '\n')
    return resume


def _has_checkpoint(work) -> bool:
    """Whether MMEngine can resume from ``work``: its ``last_checkpoint`` pointer names a
    checkpoint file that exists. MMEngine writes the pointer only after the checkpoint itself, so
    a process killed while saving leaves either no pointer (first epoch) or the previous one;
    an ``epoch_N.pth`` without a pointer may be truncated and is never resumed from."""
    try:
        named = (work / 'last_checkpoint').read_text().strip()
    except OSError:
        return False
    if not named:  # killed while writing the pointer
        return False
    target = Path(named) if Path(named).is_absolute() else work / named
    return target.is_file() and target.stat().st_size > 0


def _export_final(runner, work) -> None:
    """``final.pth``: the last epoch's weights alone (what ``evaluate`` loads)."""
    import torch
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    tmp = work / 'final.pth.tmp'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': runner.epoch}}, tmp)
    tmp.replace(work / 'final.pth')
