"""Stage ``train@<method>-<seed>``: one MMEngine ``Runner`` run of one formulation and seed.

Outputs in ``runs/<method>/seed<k>/``: ``train/`` (checkpoints, ``final.pth`` = weights of the
last epoch, MMEngine logs, ``status.json``), ``live/`` (DVCLive per-epoch curves) and
``snapshots/`` (heatmaps at ``eval.snapshot_epochs``).

Resuming: DVC keeps these folders (``persist: true``); when ``train/`` holds a complete
checkpoint (named by MMEngine's ``last_checkpoint``) written from the *same inputs* (same
``training_key``: resolved config, data manifest, code, library versions), training resumes
from it. Any other work dir (other inputs, no complete checkpoint) is never resumed from: it is
moved aside to ``train.stale/`` and the run starts over.
A diverging run (non-finite loss) stops with a one-line error and records
``status.json = {"status": "diverged", ...}``; the stage then exits 0 so that ``dvc repro``
goes on with the other runs, and the report lists the run as failed instead of using it.
"""
from __future__ import annotations

import hashlib
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Optional

import yaml

from bench._quiet import quiet_logger
from bench.config import build_config
from bench.engine.hooks import DivergenceError
from bench.params import ROOT, Params, workdir
from bench.stages.common import check_run, run_dir, write_json
from bench.stages.run_config import save_run_config

#: Libraries whose version can change the numbers of a training.
_LIBRARIES = ('torch', 'numpy', 'mmengine', 'mmcv', 'mmpose')


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
    key = training_key(cfg.to_dict())

    rank = 0
    distributed = params.train.launcher in ('pytorch', 'slurm')
    if distributed:
        from bench.engine.dist import init_distributed
        rank = init_distributed(cfg, params.train.launcher)
    checkpoint = _prepare_work_dir(out, key) if rank == 0 else None
    if rank == 0:  # what evaluate scores the model under (bench/stages/run_config.py)
        save_run_config(cfg, work)
    if distributed:
        import torch.distributed as torch_dist
        shared = [checkpoint]
        torch_dist.broadcast_object_list(shared, src=0)  # every rank resumes, or none
        checkpoint = shared[0]
    resume = checkpoint is not None
    cfg.resume = resume
    if resume:  # named explicitly: MMEngine's own pointer holds an absolute path, stale once
        cfg.load_from = checkpoint  # the checkout is moved (a config's load_from stays otherwise)

    from bench.engine.safe_load import allow_mmengine_checkpoints
    from mmengine.runner import Runner
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    quiet_logger(runner.logger)
    # a re-run of a finished run with the same training key (`dvc repro -f`, a params edit that
    # leaves the resolved config as it was) resumes from its last epoch and trains nothing: its
    # recorded time and memory stay those of the real training, not those of this process
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


def training_key(cfg: dict, work_root: Optional[Path] = None,
                 code_root: Path = ROOT) -> str:
    """sha256 of everything that decides a training's result: the resolved config (with the
    checkout's location replaced, so that a moved checkout keeps its key), the files of the
    train stage's ``deps`` in ``code_root/dvc.yaml`` (``data/...`` under ``work_root``: the
    manifest, with the sha256 of the annotation files; the code under ``code_root``), and the
    versions of the numeric libraries. A checkpoint is resumed from only under the same key:
    when DVC re-runs the stage because the data or the code changed, the run starts over
    instead of keeping a model of the old inputs."""
    from importlib.metadata import version
    work_root = (work_root or workdir()).resolve()
    text = json.dumps(cfg, sort_keys=True, default=str).replace(str(work_root), '<workdir>')
    h = hashlib.sha256(text.encode())
    deps = yaml.safe_load((code_root / 'dvc.yaml').read_text())['stages']['train']['deps']
    for dep in deps:
        base = work_root if dep.startswith('data/') else code_root
        path = base / dep
        if path.is_dir():
            files = sorted(f for f in path.rglob('*')
                           if f.is_file() and '__pycache__' not in f.parts)
        else:
            files = [path] if path.is_file() else []  # hashed as absent
        h.update(f'\0{dep}:{len(files)}'.encode())
        for f in files:
            h.update(f'\0{f.relative_to(base)}\0'.encode())
            h.update(f.read_bytes())
    for lib in _LIBRARIES:
        h.update(f'\0{lib}=={version(lib)}'.encode())
    return h.hexdigest()


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


def _prepare_work_dir(out, key: str) -> Optional[str]:
    """Keep ``train/`` for resuming when it holds a complete checkpoint written under the
    same training key; otherwise move it aside (``train.stale/``) with its curves and
    snapshots. Returns the checkpoint to resume from, or None."""
    work = out / 'train'
    stamp = work / 'fingerprint.txt'
    same = stamp.exists() and stamp.read_text().strip() == key
    checkpoint = _last_checkpoint(work) if same else None
    if work.exists() and checkpoint is None:
        stale = work.with_name('train.stale')
        shutil.rmtree(stale, ignore_errors=True)
        work.rename(stale)
        for sub in ('live', 'snapshots'):
            shutil.rmtree(out / sub, ignore_errors=True)
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
