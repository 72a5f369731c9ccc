"""Stage ``tune@<method>``: the same learning-rate budget for every method.

A formulation's best learning rate is its own: a loss of another scale (KL over K+1 channels,
MSE on heatmaps, RLE's log-likelihood) moves the optimum, and comparing every method at one
rate tuned for the baseline would favour the baseline. With ``tune.enabled``, this stage
trains one short run per rate of ``tune.lrs`` (seed ``tune.seed``, ``tune.epochs`` epochs, the
profile's schedule shrunk to that length: warm-up as is, milestones scaled), scores each on the
*validation* split (PCK@0.1 after the last epoch, MMPose's ``PCKAccuracy``) and picks the best.
Every method gets the same grid, epochs and seed: the budget is equal by construction. The
test split is never looked at.

Outputs:

- ``runs/tune/<method>/lr<x>/``: each trial's MMEngine work dir and ``trial.json``
  (``lr``, ``val_PCK``, ``val_EPE``, ``status``, ``key``): a trial already scored under the
  same training key is not trained again, so a re-run (or a killed one) redoes only what is
  missing; ``runs/tune/<method>/trials.json``: today's grid's trials (``[]`` when off);
- ``runs/tuned/<method>.json``: ``{"enabled", "lr", "grid": {lr: val PCK}, "epochs", "seed",
  "metric"}``, the learning rate ``train@<method>`` trains every seed and geometry with
  (:func:`method_lr`). Off (the default profile): ``{"enabled": false, "lr": train.lr}``,
  written without importing MMPose.

Ties go to the smaller rate. A diverged trial scores nothing (it cannot win); if every trial
diverges the stage fails with one line naming the method.
"""
from __future__ import annotations

import gc
import json
import math

from bench.errors import RunError
from bench.params import Params, ParamsError
from bench.runs import trial_dir, trials_file, tuned_file
from bench.stages.common import check_run, write_json

#: The validation metric the trials are ranked by (MMPose's PCKAccuracy, thr 0.1, bbox).
METRIC = 'val/PCK'


def run(params: Params, method: str) -> dict:
    """Pick ``method``'s learning rate (or record ``train.lr`` when tuning is off); returns
    what ``runs/tuned/<method>.json`` now holds."""
    t = params.tune
    if not t.enabled:  # light: no MMPose, no torch
        if method not in params.methods:
            raise ParamsError(f'method {method!r} is not defined in params.yaml `methods` '
                              f'(defined: {", ".join(sorted(params.methods))})')
        choice = dict(enabled=False, lr=params.train.lr, method=method)
        write_json(trials_file(method), [])  # the stage's other output: no trials
        write_json(tuned_file(method), choice)
        print(f'tune {method}: off (tune.enabled: false): trains at train.lr = '
              f'{params.train.lr:g}', flush=True)
        return choice

    check_run(params, method)
    lrs = list(t.lrs)
    import shutil
    keep = {trial_dir(method, lr).name for lr in lrs}
    for old in sorted(trial_dir(method, lrs[0]).parent.glob('lr*')):
        if old.is_dir() and old.name not in keep:  # a rate no longer in tune.lrs
            shutil.rmtree(old, ignore_errors=True)
    from bench.console import StageProgress
    from bench.stages.parallel import train_seeds
    # the trials side by side, as the train stage trains seeds (bench/stages/parallel.py)
    names = {f'{method}/lr{lr:g}': lr for lr in lrs}
    with StageProgress(f'tune {method}', list(names), units=t.epochs, unit='epoch',
                       poll=_poller(names, method), item='trial'):
        results = train_seeds(params, method, lrs, run_trial, what='tune')
    grid = {f'{lr:g}': results[lr].get('val_PCK') for lr in lrs}
    scored = [(lr, results[lr]['val_PCK']) for lr in lrs
              if isinstance(results[lr].get('val_PCK'), float)
              and math.isfinite(results[lr]['val_PCK'])]
    if not scored:
        raise RunError(f'tune {method}: every trial of tune.lrs {lrs} diverged or scored '
                       f'nothing; see runs/tune/{method}/')
    best = max(scored, key=lambda p: (p[1], -p[0]))[0]  # ties: the smaller rate
    choice = dict(enabled=True, lr=best, grid=grid, epochs=t.epochs, seed=t.seed,
                  metric='val PCK@0.1', method=method)
    write_json(trials_file(method), [results[lr] for lr in lrs])
    write_json(tuned_file(method), choice)
    print(f'tune {method}: ' + ', '.join(f'lr {k}: {v if v is None else round(v, 4)}'
                                        for k, v in grid.items()) + f' -> lr {best:g}',
          flush=True)
    return choice


def _poller(names: dict, method: str):
    """``poll(trial) -> (epochs done, finished, val PCK)`` for the progress display, from the
    trial's ``progress.json`` and ``trial.json`` (finished: written during this stage)."""
    import time

    from bench.console import read_progress
    started = time.time()

    def poll(name: str) -> tuple:
        work = trial_dir(method, names[name])
        record = work / 'trial.json'
        if record.is_file() and record.stat().st_mtime >= started - 1:
            try:
                pck = json.loads(record.read_text()).get('val_PCK')
            except ValueError:
                pck = None
            return 0, True, pck
        return read_progress(work, since=started - 1).get('epoch'), False, None
    return poll


def trial_config(params: Params, method: str, lr: float):
    """(config, work dir, training key) of the trial of ``method`` at ``lr``."""
    from bench.config import build_config
    from bench.stages.common import training_key
    t, tr = params.tune, params.train
    scale = t.epochs / tr.epochs
    milestones = tuple(sorted({max(1, round(m * scale)) for m in tr.milestones
                               if round(m * scale) < t.epochs}))
    short = params.model_copy(update=dict(train=tr.model_copy(update=dict(
        epochs=t.epochs, milestones=milestones, val_interval=t.epochs))))
    work = trial_dir(method, lr)
    cfg = build_config(short, method, t.seed, work_dir=work, lr=lr)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='EpochSeedHook', seed=t.seed),
        dict(type='ProgressHook', out_file=str(work / 'progress.json'))]
    if tr.divergence_guard:
        cfg.custom_hooks.append(dict(type='DivergenceGuardHook',
                                     run_name=f'tune/{method}/lr{lr:g}'))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    return cfg, work, training_key(cfg.to_dict())


def run_trial(params: Params, method: str, lr: float) -> dict:
    """Train and score one trial (skipped when ``trial.json`` holds a result of the same
    training key); returns ``trial.json``'s content."""
    import shutil

    from bench.quiet import quiet_logger
    from bench.engine.hooks import DivergenceError
    cfg, work, key = trial_config(params, method, lr)
    record = work / 'trial.json'
    try:
        old = json.loads(record.read_text())
        if old.get('key') == key:
            print(f'tune {method}/lr{lr:g}: already scored (val PCK {old.get("val_PCK")}): '
                  f'skipped', flush=True)
            return old
    except (OSError, ValueError):
        pass
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg.experiment_name = f'tune_{method}_lr{lr:g}'
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer['name'] = cfg.experiment_name
    from bench.console import build_runner, report_failure, to_log
    runner, log_file = build_runner(cfg)
    quiet_logger(runner.logger)
    try:
        with to_log(log_file):  # the COCO evaluator prints its tables
            runner.train()
        hub = runner.message_hub
        result = dict(status='ok', lr=lr, epochs=params.tune.epochs, key=key,
                      val_PCK=float(hub.get_scalar(METRIC).current()),
                      val_EPE=float(hub.get_scalar('val/EPE').current()))
    except DivergenceError as exc:
        report_failure(f'tune/{method}/lr{lr:g}', str(exc), log_file)
        result = dict(status='diverged', lr=lr, key=key, message=str(exc))
    finally:
        del runner
        gc.collect()
    write_json(record, result)
    return result
