"""Stage ``evaluate@<method>-<seed>``: score a trained run on the test split.

The model is scored under ``train/config.py``, the resolved config the train stage saved with
the run (:mod:`bench.stages.run_config`), never under today's ``params.yaml``: a params edit
that DVC did not re-run cannot change how an old model is scored. The only parameter read from
``params.yaml`` is this stage's own ``eval.pck_thresholds`` (declared in ``dvc.yaml``).

Writes ``runs/<method>/seed<k>/metrics.json`` (DVC metrics: PCK at ``eval.pck_thresholds``,
AUC, EPE, mean OKS, OKS AP/AP50/AP75, per-joint PCK@0.1, and for classification heads the
per-pixel ECE) and in ``eval/``:

- ``keypoints.npz``: the test split per keypoint (score, normalised distance, visibility,
  OKS...: :class:`bench.engine.metrics.KeypointRecorder`), the report's PCK-curve, bootstrap,
  AUROC and calibration input;
- ``keypoints_val.npz``: the same for the validation split, on which the report fits the
  recalibration of the keypoint scores (never on the split it then scores);
- ``pixel_calibration.npz`` (classification heads only): the per-pixel reliability histogram of
  the K+1 softmax against the soft targets on the test split
  (:mod:`bench.engine.pixel_calibration`);
- ``timing.json``: the stage's wall time.

A run whose training diverged gets ``metrics.json = {"status": "diverged", ...}`` instead.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from bench._quiet import quiet_logger
from bench.errors import RunError
from bench.params import Params
from bench.stages.common import check_run, run_dir, write_json
from bench.stages.run_config import load_run_config

_COCO_KEYS = {'coco/AP': 'AP', 'coco/AP .5': 'AP50', 'coco/AP .75': 'AP75'}


def run(params: Params, method: str, seed: int) -> dict:
    check_run(params, method, seed)
    out = run_dir(method, seed)
    status_file = out / 'train' / 'status.json'
    if not status_file.exists():
        raise RunError(f'run {method}/seed{seed} has not been trained ({status_file} missing); '
                       f'run `dvc repro train@{method}-{seed}` first')
    status = json.loads(status_file.read_text())
    if status.get('status') != 'ok':
        result = dict(status=status.get('status', 'failed'), method=method, seed=seed,
                      message=status.get('message', ''))
        write_json(out / 'metrics.json', result)
        return result

    start = time.perf_counter()
    eval_dir = out / 'eval'
    shutil.rmtree(eval_dir, ignore_errors=True)
    cfg = load_run_config(out / 'train', run=f'{method}/seed{seed}')
    cfg.work_dir = str(eval_dir / 'work')
    cfg.load_from = str(out / 'train' / 'final.pth')
    cfg.resume = False
    cfg.launcher = 'none'
    coco = [e for e in cfg.test_evaluator if e['type'] == 'CocoMetric']
    for e in coco:
        e['outfile_prefix'] = str(eval_dir / 'work' / 'coco')
    recorder = dict(type='KeypointRecorder', thresholds=list(params.eval.pck_thresholds),
                    heatmap_size=list(cfg.model.head.decoder['heatmap_size']))
    cfg.test_evaluator = [dict(recorder, out_file=str(eval_dir / 'keypoints.npz')), *coco]
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='PoseLocalVisualizer', vis_backends=[], name='visualizer')

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

    per_joint = {k.split('/', 1)[1]: v for k, v in metrics.items() if '/' in k}
    result = dict(status='ok', method=method, seed=seed,
                  **{k: v for k, v in metrics.items() if '/' not in k},
                  per_joint_pck={k: per_joint[k] for k in sorted(per_joint)})
    write_json(out / 'metrics.json', result)
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
    to ``eval/pixel_calibration.npz``; returns its ECE, or None for a regression head."""
    from bench.engine.pixel_calibration import score_pixels
    result = score_pixels(model, loader)
    if result is None:
        return None
    np.savez_compressed(eval_dir / 'pixel_calibration.npz', **result)
    return float(result['ece'])
