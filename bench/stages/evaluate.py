"""Stage ``evaluate@<method>``: score every trained seed of one formulation on the test split,
one after another in one process (``python -m bench evaluate --method M --seed S``: one seed).

Each model is scored under ``config.py``, the resolved config the train stage saved in its work
dir (:mod:`bench.stages.run_config`), never under today's ``params.yaml``: a params edit that
DVC did not re-run cannot change how an old model is scored. The parameters read from
``params.yaml`` are this stage's own ``eval.pck_thresholds`` and ``seeds`` (declared in
``dvc.yaml``).

Writes, per seed, in ``runs/eval/<method>/seed<k>/`` (layout: :mod:`bench.stages.common`):

- ``metrics.json``: PCK at ``eval.pck_thresholds``, AUC, EPE, mean OKS, OKS AP/AP50/AP75,
  per-joint PCK@0.1, and for classification heads the per-pixel ECE and ``AP_P``: OKS AP
  with the instances ranked by the second keypoint score (the class probability :math:`P_j`
  instead of the recovered Gaussian's peak);
- ``train_status.json``: a copy of the training's ``status.json`` (status, wall time, peak
  memory), so that the report never reads ``runs/train``;
- ``keypoints.npz``: the test split per keypoint (score, normalised distance, visibility,
  OKS...: :class:`bench.evaluation.metrics.KeypointRecorder`), the report's PCK-curve, bootstrap,
  AUROC and calibration input;
- ``keypoints_val.npz``: the same for the validation split, on which the report fits the
  recalibration of the keypoint scores (never on the split it then scores);
- ``pixel_calibration.npz`` (classification heads only): the per-pixel reliability histogram of
  the K+1 softmax against the soft targets on the test split
  (:mod:`bench.evaluation.pixel_calibration`);
- ``timing.json``: the seed's evaluation wall time;
- ``cost.json``: parameters and FLOPs (head, whole model), training step and inference times
  (:func:`_cost`);

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

from bench.quiet import quiet_logger
from bench.console import StageProgress, build_runner, to_log
from bench.formulations import for_head
from bench.errors import RunError
from bench.params import Params
from bench.stages.common import check_run, data_fingerprint, runner_names, write_json
from bench.runs import RunPaths, metrics_file, prune_seeds, seed_key
from bench.stages.run_config import load_run_config

_COCO_KEYS = {'coco/AP': 'AP', 'coco/AP .5': 'AP50', 'coco/AP .75': 'AP75',
              'coco_p/AP': 'AP_P'}


def run(params: Params, method: str, seed: Optional[int] = None,
        geometry: Optional[str] = None) -> dict[str, dict]:
    """Evaluate every run of ``method`` (each seed of ``params.seeds`` at each geometry; or only
    (``seed``, ``geometry``)); returns {run key: metrics} and writes the method's metrics file
    (the runs of ``params.yaml`` it already lists, the one evaluated replaced, when one run is
    evaluated)."""
    check_run(params, method, seed)
    params.at_geometry(geometry)  # an unknown geometry stops here, in one line
    keys = ([(g, s) for g in params.geometries() for s in params.seeds] if seed is None
            else [(geometry, seed)])
    if seed is None:
        prune_seeds(method, params.seeds, ('eval',), geometries=params.geometries())
    # every run must be trained before any is scored: one line for the first that is not
    for g, s in keys:
        status_file = RunPaths(method, s, geometry=g).train / 'status.json'
        if not status_file.is_file():
            raise RunError(f'run {method}/{seed_key(s, g)} has not been trained ({status_file} '
                           f'missing); run `dvc repro train@{method}` first')
    path = metrics_file(method)
    try:
        table = json.loads(path.read_text()) if seed is not None else {}
    except (OSError, ValueError):
        table = {}
    everything = [seed_key(s, g) for g in params.geometries() for s in params.seeds]

    def save():
        write_json(path, {k: table[k] for k in everything if k in table})

    runs = {RunPaths(method, s, geometry=g).name: (g, s) for g, s in keys}
    with StageProgress(f'evaluate {method}', list(runs), poll=_poller(method, runs)):
        if params.train.parallel_runs > 1 and len(keys) > 1 and params.train.launcher == 'none':
            # the runs side by side, as the train stage trains them (bench/stages/parallel.py)
            from bench.stages.parallel import train_seeds
            done = train_seeds(params, method, keys, run_key, what='evaluate')
            for g, s in keys:
                table[seed_key(s, g)] = done[(g, s)]
            save()
        else:
            for g, s in keys:
                table[seed_key(s, g)] = run_one(params, method, s, g)
                save()
    return {seed_key(s, g): table[seed_key(s, g)] for g, s in keys}


def _poller(method: str, runs: dict):
    """``poll(run) -> (0, finished, test PCK@0.1)``: a run is finished once its
    ``metrics.json`` is written during this stage (before that, it is neither running nor done
    on the display: evaluation counts no units)."""
    started = time.time()

    def poll(name: str) -> tuple:
        g, s = runs[name]
        metrics = RunPaths(method, s, geometry=g).eval / 'metrics.json'
        if metrics.is_file() and metrics.stat().st_mtime >= started - 1:
            try:
                return 0, True, json.loads(metrics.read_text()).get('PCK@0.1')
            except ValueError:
                return 0, True, None
        return None, False, None
    return poll


def run_key(params: Params, method: str, key: tuple[Optional[str], int]) -> dict:
    """:func:`run_one` of run key (geometry, seed): what the parallel workers call."""
    geometry, seed = key
    return run_one(params, method, seed, geometry)


def run_one(params: Params, method: str, seed: int, geometry: Optional[str] = None) -> dict:
    """Score run (``method``, ``seed``, ``geometry``) with a fresh Runner into
    ``runs/eval/<method>/[<geometry>-]seed<k>/``; returns its metrics."""
    check_run(params, method, seed)
    paths = RunPaths(method, seed, geometry=geometry)
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
                      **({'geometry': geometry} if geometry else {}),
                      message=status.get('message', ''))
        write_json(eval_dir / 'metrics.json', result)
        return result

    start = time.perf_counter()
    cfg = load_run_config(paths.train, run=paths.name)
    check_same_data(cfg, status, paths.name, method)
    cfg.work_dir = str(eval_dir / 'work')
    cfg.load_from = str(paths.train / 'final.pth')
    cfg.resume = False
    cfg.launcher = 'none'
    coco = [e for e in cfg.test_evaluator if e['type'] == 'CocoMetric']
    for e in coco:
        e['outfile_prefix'] = str(eval_dir / 'work' / 'coco')
    if coco and has_second_score(cfg):
        # AP under the second score too (the class probability P_j): the report sets it
        # beside AP under the head's own score
        coco.append(dict(coco[0], type='ScoreCocoMetric', score_key='keypoint_probs',
                         prefix='coco_p', outfile_prefix=str(eval_dir / 'work' / 'coco_p')))
    recorder = dict(type='KeypointRecorder', thresholds=list(params.eval.pck_thresholds),
                    heatmap_size=for_head(cfg.model.head.type).resolution(
                        cfg.model.head.decoder))
    cfg.test_evaluator = [dict(recorder, out_file=str(eval_dir / 'keypoints.npz')), *coco]
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='PoseLocalVisualizer', vis_backends=[])
    runner_names(cfg, paths, 'evaluate')

    runner, log_file = build_runner(cfg)
    quiet_logger(runner.logger)
    with to_log(log_file):  # the COCO evaluator prints its tables
        raw = runner.test()
    metrics = {_COCO_KEYS.get(k, k): round(float(v), 6) for k, v in raw.items()
               if k in _COCO_KEYS or not k.startswith(('coco/', 'coco_p/'))}
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    with to_log(log_file):
        _dump_split(model, runner.build_dataloader(cfg.val_dataloader),
                    dict(recorder, out_file=str(eval_dir / 'keypoints_val.npz')))
    pixels = _pixel_calibration(model, runner.test_dataloader, eval_dir)
    if pixels is not None:
        metrics['pixel_ECE'] = round(pixels, 6)
    cost = _cost(cfg, model, status)
    del runner, model
    gc.collect()

    per_joint = {k.split('/', 1)[1]: v for k, v in metrics.items() if '/' in k}
    result = dict(status='ok', method=method, seed=seed,
                  **({'geometry': geometry} if geometry else {}),
                  **{k: v for k, v in metrics.items() if '/' not in k},
                  per_joint_pck={k: per_joint[k] for k in sorted(per_joint)})
    write_json(eval_dir / 'metrics.json', result)
    # apart from metrics.json, which must stay byte-identical for the same seed
    write_json(eval_dir / 'timing.json',
               dict(stage='evaluate', wall_s=round(time.perf_counter() - start, 1)))
    write_json(eval_dir / 'cost.json', cost)
    return result


def check_same_data(cfg, train_status: dict, run: str, method: str) -> None:
    """One line, before MMPose's own assertion, when run ``run`` cannot be scored on the data
    it was trained with: its test annotations are gone, or ``data/manifest.json`` changed since
    its training (recorded in its status as ``data``; runs trained before it was recorded are
    checked for the files only).

    Raises:
        RunError: naming the run, what changed and the command that retrains it.
    """
    ds = cfg.test_dataloader.dataset
    ann = Path(ds.get('data_root', '')) / ds.get('ann_file', '')
    if not ann.is_file():
        raise RunError(f'run {run}: its test annotations {ann} are gone (the data changed '
                       f'since it was trained); retrain it: dvc repro train@{method}')
    recorded, now = train_status.get('data'), data_fingerprint()
    if recorded is not None and now is not None and recorded != now:
        raise RunError(f'run {run} was trained on other data (data/manifest.json changed '
                       f'since); retrain it: dvc repro train@{method}')


def has_second_score(cfg) -> bool:
    """Whether the run's head decodes a second keypoint score (its codec has
    ``decode_with_probs``: the class probability beside the recovered Gaussian's peak)."""
    from mmpose.registry import KEYPOINT_CODECS
    decoder = cfg.model.head.get('decoder')
    return decoder is not None and hasattr(KEYPOINT_CODECS.get(decoder['type']),
                                           'decode_with_probs')


def _cost(cfg, model, train_status: dict) -> dict:
    """``cost.json``: the network's size and FLOPs (head alone and whole model, batch 1:
    :func:`bench.evaluation.model_cost.model_complexity`), the training step time the train
    stage recorded, and
    this process's inference time per image (``test_step`` at batch 32: flip test and decoding
    included; 5 timed batches after one warm-up, at the stage's thread count). Timings depend
    on the machine and its load; the counts do not."""
    from bench.evaluation.model_cost import inference_ms, input_size_of, model_complexity
    c = model_complexity(cfg)
    infer = inference_ms(model, batch_size=32, repeats=5, warmup=1,
                         input_size=input_size_of(cfg))
    return dict(head_params=c['head_params'], head_flops=c['head_flops'],
                model_params=c['model_params'], model_flops=c['model_flops'],
                train_step_ms=train_status.get('step_ms'), infer_ms=round(infer, 3))


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
    from bench.evaluation.pixel_calibration import score_pixels
    result = score_pixels(model, loader)
    if result is None:
        return None
    np.savez_compressed(eval_dir / 'pixel_calibration.npz', **result)
    return float(result['ece'])
