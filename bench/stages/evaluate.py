"""Stage ``evaluate@<method>``: score every trained seed of one formulation on the test split,
one after another in one process (``python -m bench evaluate --method M --seed S``: one seed).

Each model is scored under ``config.py``, the resolved config the train stage saved in its work
dir (:mod:`bench.stages.run_config`), never under today's ``params.yaml``: a params edit that
DVC did not re-run cannot change how an old model is scored. The parameters read from
``params.yaml`` are this stage's own ``eval.pck_thresholds`` and ``seeds`` (declared in
``dvc.yaml``).

Writes, per seed, in ``runs/eval/<method>/seed<k>/`` (layout: :mod:`bench.stages.common`):

- ``metrics.json``: PCK at ``eval.pck_thresholds``, AUC, EPE, mean OKS, OKS AP/AP50/AP75,
  per-joint PCK@0.1, and for classification heads the per-pixel ECE;
- ``train_status.json``: a copy of the training's ``status.json`` (status, wall time, peak
  memory), so that the report never reads ``runs/train``;
- ``keypoints.npz``: the test split per keypoint (score, normalised distance, visibility,
  OKS...: :class:`bench.engine.metrics.KeypointRecorder`), the report's PCK-curve, bootstrap,
  AUROC and calibration input;
- ``keypoints_val.npz``: the same for the validation split, on which the report fits the
  recalibration of the keypoint scores (never on the split it then scores);
- ``pixel_calibration.npz`` (classification heads only): the per-pixel reliability histogram of
  the K+1 softmax against the soft targets on the test split
  (:mod:`bench.engine.pixel_calibration`);
- ``timing.json``: the seed's evaluation wall time;

and ``runs/metrics/<method>.json`` = ``{"seed<k>": <metrics.json>, ...}`` over the method's
seeds (the DVC metrics file: ``dvc metrics show`` lists every run). A run whose training
diverged gets ``metrics.json = {"status": "diverged", ...}`` instead.
"""
from __future__ import annotations

import gc
import json
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np

from bench._quiet import quiet_logger
from bench.errors import RunError
from bench.params import Params
from bench.stages.common import (RunPaths, check_run, metrics_file, prune_seeds,
                                 runner_names, seed_key, write_json)
from bench.stages.run_config import load_run_config

_COCO_KEYS = {'coco/AP': 'AP', 'coco/AP .5': 'AP50', 'coco/AP .75': 'AP75'}


def run(params: Params, method: str, seed: Optional[int] = None) -> dict[int, dict]:
    """Evaluate every seed of ``params.seeds`` (or only ``seed``) of ``method``; returns
    {seed: metrics} and writes the method's metrics file (the seeds of ``params.seeds`` it
    already lists, ``seed``'s replaced, when one seed is evaluated)."""
    check_run(params, method, seed)
    seeds = list(params.seeds) if seed is None else [seed]
    if seed is None:
        prune_seeds(method, params.seeds, ('eval',))
    # every run must be trained before any is scored: one line for the first that is not
    for s in seeds:
        status_file = RunPaths(method, s).train / 'status.json'
        if not status_file.is_file():
            raise RunError(f'run {method}/seed{s} has not been trained ({status_file} '
                           f'missing); run `dvc repro train@{method}` first')
    path = metrics_file(method)
    try:
        table = json.loads(path.read_text()) if seed is not None else {}
    except (OSError, ValueError):
        table = {}
    results = {}
    if params.train.parallel_runs > 1 and len(seeds) > 1 and params.train.launcher == 'none':
        # the seeds side by side, as the train stage trains them (bench/stages/parallel.py)
        from bench.stages.parallel import train_seeds
        results = train_seeds(params, method, seeds, run_one, what='evaluate')
        for s in seeds:
            table[seed_key(s)] = results[s]
        write_json(path, {seed_key(k): table[seed_key(k)] for k in params.seeds
                          if seed_key(k) in table})
        return results
    for s in seeds:
        results[s] = run_one(params, method, s)
        table[seed_key(s)] = results[s]
        keep = {seed_key(k): table[seed_key(k)] for k in params.seeds if seed_key(k) in table}
        write_json(path, keep)
    return results


def run_one(params: Params, method: str, seed: int) -> dict:
    """Score run (``method``, ``seed``) with a fresh Runner into ``runs/eval/<method>/seed<k>/``;
    returns its metrics."""
    check_run(params, method, seed)
    paths = RunPaths(method, seed)
    status_file = paths.train / 'status.json'
    if not status_file.exists():
        raise RunError(f'run {paths.name} has not been trained ({status_file} missing); '
                       f'run `dvc repro train@{method}` first')
    eval_dir = paths.eval
    shutil.rmtree(eval_dir, ignore_errors=True)
    eval_dir.mkdir(parents=True)
    shutil.copyfile(status_file, eval_dir / 'train_status.json')
    status = json.loads(status_file.read_text())
    if status.get('status') != 'ok':
        result = dict(status=status.get('status', 'failed'), method=method, seed=seed,
                      message=status.get('message', ''))
        write_json(eval_dir / 'metrics.json', result)
        return result

    start = time.perf_counter()
    cfg = load_run_config(paths.train, run=paths.name)
    cfg.work_dir = str(eval_dir / 'work')
    cfg.load_from = str(paths.train / 'final.pth')
    cfg.resume = False
    cfg.launcher = 'none'
    coco = [e for e in cfg.test_evaluator if e['type'] == 'CocoMetric']
    for e in coco:
        e['outfile_prefix'] = str(eval_dir / 'work' / 'coco')
    recorder = dict(type='KeypointRecorder', thresholds=list(params.eval.pck_thresholds),
                    heatmap_size=list(cfg.model.head.decoder['heatmap_size']))
    cfg.test_evaluator = [dict(recorder, out_file=str(eval_dir / 'keypoints.npz')), *coco]
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='PoseLocalVisualizer', vis_backends=[])
    runner_names(cfg, paths, 'evaluate')

    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    quiet_logger(runner.logger)
    raw = runner.test()
    metrics = {_COCO_KEYS.get(k, k): round(float(v), 6) for k, v in raw.items()
               if k in _COCO_KEYS or not k.startswith('coco/')}
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    _dump_split(model, Runner.build_dataloader(cfg.val_dataloader),
                dict(recorder, out_file=str(eval_dir / 'keypoints_val.npz')))
    pixels = _pixel_calibration(model, runner.test_dataloader, eval_dir)
    if pixels is not None:
        metrics['pixel_ECE'] = round(pixels, 6)
    del runner, model
    gc.collect()

    per_joint = {k.split('/', 1)[1]: v for k, v in metrics.items() if '/' in k}
    result = dict(status='ok', method=method, seed=seed,
                  **{k: v for k, v in metrics.items() if '/' not in k},
                  per_joint_pck={k: per_joint[k] for k in sorted(per_joint)})
    write_json(eval_dir / 'metrics.json', result)
    # apart from metrics.json, which must stay byte-identical for the same seed
    write_json(eval_dir / 'timing.json',
               dict(stage='evaluate', wall_s=round(time.perf_counter() - start, 1)))
    return result


def _dump_split(model, loader, metric: dict) -> None:
    """Score ``loader``'s split with ``metric`` (a ``KeypointRecorder`` config with an
    ``out_file``) for its dump only: same model, same test-time options as the test split."""
    import torch
    from mmengine.evaluator import Evaluator

    from bench.engine.inference import test_cfg_override
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = loader.dataset.metainfo
    with test_cfg_override(model), torch.no_grad():
        for batch in loader:
            evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
    evaluator.evaluate(len(loader.dataset))


def _pixel_calibration(model, loader, eval_dir: Path) -> float | None:
    """Per-pixel calibration of a classification head on ``loader`` (the test split), written
    to ``<eval_dir>/pixel_calibration.npz``; returns its ECE, or None for a regression head."""
    from bench.engine.pixel_calibration import score_pixels
    result = score_pixels(model, loader)
    if result is None:
        return None
    np.savez_compressed(eval_dir / 'pixel_calibration.npz', **result)
    return float(result['ece'])
