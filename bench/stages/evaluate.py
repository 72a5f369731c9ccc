"""Stage ``evaluate@<method>-<seed>``: score a trained run on the test split.

Writes ``runs/<method>/seed<k>/metrics.json`` (DVC metrics: PCK at ``eval.pck_thresholds``,
AUC, EPE, OKS AP/AP50/AP75, per-joint PCK@0.1) and ``eval/keypoints.npz`` (per keypoint: score,
normalised distance, visibility — the report's calibration, per-image and PCK-curve inputs)
and ``eval/timing.json`` (the stage's wall time).
A run whose training diverged gets ``metrics.json = {"status": "diverged", ...}`` instead.
"""
from __future__ import annotations

import json
import shutil
import time

from bench._quiet import quiet_logger
from bench.config import build_config
from bench.errors import RunError
from bench.params import Params
from bench.stages.common import check_run, run_dir, write_json

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
    cfg = build_config(params, method, seed, work_dir=eval_dir / 'work')
    cfg.load_from = str(out / 'train' / 'final.pth')
    cfg.resume = False
    cfg.launcher = 'none'
    coco = [e for e in cfg.test_evaluator if e['type'] == 'CocoMetric']
    for e in coco:
        e['outfile_prefix'] = str(eval_dir / 'work' / 'coco')
    cfg.test_evaluator = [
        dict(type='KeypointRecorder', thresholds=list(params.eval.pck_thresholds),
             out_file=str(eval_dir / 'keypoints.npz')), *coco]
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='PoseLocalVisualizer', vis_backends=[], name='visualizer')

    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    quiet_logger(runner.logger)
    raw = runner.test()
    metrics = {_COCO_KEYS.get(k, k): round(float(v), 6) for k, v in raw.items()
               if k in _COCO_KEYS or not k.startswith('coco/')}
    per_joint = {k.split('/', 1)[1]: v for k, v in metrics.items() if '/' in k}
    result = dict(status='ok', method=method, seed=seed,
                  **{k: v for k, v in metrics.items() if '/' not in k},
                  per_joint_pck={k: per_joint[k] for k in sorted(per_joint)})
    write_json(out / 'metrics.json', result)
    # apart from metrics.json, which must stay byte-identical for the same seed
    write_json(eval_dir / 'timing.json',
               dict(stage='evaluate', wall_s=round(time.perf_counter() - start, 1)))
    return result
