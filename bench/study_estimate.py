"""``python -m bench estimate``: what a profile's study costs on this machine, before running it.

For every active method at every geometry of the profile (``model``'s own and each ``sweep``
point), one real training step (data preprocessor, forward, loss, backward, Adam) is timed on a
real batch of the profile's size, built by the method's own MMPose pipeline from the generated
data in ``data/`` (run ``python -m bench data`` first; the images only need to exist, the crop
is the profile's input size). The step time, times the profile's iterations, gives each run's
training time; the learning-rate trials (``tune``) are added per method. On a CUDA machine the
steps run on the GPU (synchronised before each clock read).

What the estimate leaves out, and says so in its report: the data path (the batched path
costs about 10% of an iteration on 2 CPU cores, ``reports/perf.md``; on an H200 the host side
doubled a study-profile iteration), validation passes, the evaluate stage and process start-up
(seconds per stage).

Writes ``<out>/study_estimate.csv`` (one row per method × geometry) and
``<out>/study_estimate.md``.
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import pandas as pd

from bench.params import Params

COLUMNS = ['method', 'geometry', 'input_size', 'heatmap_size', 'batch', 'device', 'threads',
           'step_ms', 'iters_per_run', 'run_min', 'runs', 'total_h']


def _device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def step_ms(params: Params, method: str, steps: int = 5, warmup: int = 2) -> float:
    """Median wall ms of one training step of ``method`` at ``params``' geometry and batch."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.models import build_pose_estimator
    from mmpose.registry import DATASETS

    from bench.config import build_config
    from bench.perf import train_step_fn
    init_default_scope('mmpose')
    stock = params.model_copy(update=dict(train=params.train.model_copy(
        update=dict(data_path='mmpose'))))
    cfg = build_config(stock, method, seed=0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    b = params.train.batch_size
    batch = pseudo_collate([dataset[i % len(dataset)] for i in range(b)])
    torch.manual_seed(0)
    device = _device()
    model = build_pose_estimator(cfg.model).to(device).train()
    if params.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    step = train_step_fn(model, batch, optim)

    times = []
    for i in range(warmup + steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _train_images(params: Params) -> int:
    if params.data.source == 'stickman':
        return params.data.stickman.train
    import json

    from bench.data.layout import data_layout
    layout = data_layout(params)
    ann = json.loads(Path(layout['root'], layout['ann_files']['train']).read_text())
    return len(ann['annotations'])


def estimate(params: Params, steps: int = 5) -> pd.DataFrame:
    """One row per active method × geometry: the measured step and the extrapolated study."""
    import torch
    n_train = _train_images(params)
    iters_epoch = math.ceil(n_train / params.train.batch_size)
    rows = []
    for method in params.active_methods:
        for tag in params.geometries():
            p = params.at_geometry(tag)
            ms = step_ms(p, method, steps=steps)
            iters = iters_epoch * params.train.epochs
            runs = len(params.seeds)
            if tag is None and params.tune.enabled:  # the trials, at the profile's geometry
                iters_tune = iters_epoch * params.tune.epochs * len(params.tune.lrs)
            else:
                iters_tune = 0
            rows.append(dict(method=method, geometry=tag or params.base_geometry(),
                             input_size='x'.join(map(str, p.model.input_size)),
                             heatmap_size='x'.join(map(str, p.model.heatmap_size)),
                             batch=params.train.batch_size, device=_device(),
                             threads=torch.get_num_threads(), step_ms=round(ms, 2),
                             iters_per_run=iters, run_min=round(ms * iters / 6e4, 2), runs=runs,
                             total_h=round(ms * (iters * runs + iters_tune) / 3.6e6, 3)))
            print(f'estimate {method} {rows[-1]["geometry"]}: {ms:.1f} ms/step -> '
                  f'{rows[-1]["run_min"]} min per run', flush=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame, params: Params) -> str:
    import torch
    dev = table.device.iat[0] if len(table) else _device()
    from bench.perf import cpu_name
    name = torch.cuda.get_device_name(0) if dev == 'cuda' else cpu_name()
    total = float(table.total_h.sum())
    par = max(params.train.parallel_runs, 1)
    lines = [
        f'# Study estimate: `{params.profile}` profile\n',
        f'Measured on {name} ({dev}, {int(table.threads.iat[0]) if len(table) else "?"} '
        f'threads): one training step per method × geometry (batch {params.train.batch_size}, '
        f'median of the timed steps), times {params.train.epochs} epochs of '
        f'{_train_images(params)} images, × {len(params.seeds)} seeds, plus the learning-rate '
        f'trials ({_trials(params)}).\n',
        '| method | geometry | input | heatmap | step (ms) | one run (min) | all seeds (h) |',
        '|---|---|---|---|---|---|---|']
    for r in table.itertuples():
        lines.append(f'| {r.method} | {r.geometry} | {r.input_size} | {r.heatmap_size} | '
                     f'{r.step_ms:.1f} | {r.run_min:.1f} | {r.total_h:.2f} |')
    lines += ['',
              f'**Training steps in all: {total:.1f} h one run at a time** '
              f'({len(table)} method × geometry cells, {int(table.runs.sum())} runs)'
              + (f'; with `train.parallel_runs: {par}` the wall time is lower only as far as '
                 'the device has idle capacity (on 2 CPU cores: about 1.4× for two runs).'
                 if par > 1 else '.'),
              '',
              'Not included: the data path, validation every `train.val_interval` epochs, '
              'the evaluate stage and process start-up (seconds per stage), so the total is a '
              'lower bound. How far below, measured: on 2 CPU cores the data path is about 10% '
              'of an iteration (`perf.md`) and a real training runs within about 20% of this '
              'estimate; on an H200 a real study-profile iteration (MMEngine\'s logged time, '
              'data included) took 52-74 ms against 30-35 ms here: at batch 32 the GPU waits '
              'on the host, so multiply by about 2 there (README, "The formulations zoo").', '']
    return '\n'.join(lines)


def run(params: Params, out_dir: str | Path = 'reports', steps: int = 5) -> pd.DataFrame:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = estimate(params, steps=steps)
    table.to_csv(out / 'study_estimate.csv', index=False, lineterminator='\n')
    (out / 'study_estimate.md').write_text(markdown(table, params))
    print(f'estimate: {float(table.total_h.sum()):.1f} h of training steps -> '
          f'{out / "study_estimate.md"}')
    return table


def _trials(params: Params) -> str:
    """The learning-rate trials, in words."""
    if not params.tune.enabled:
        return 'off'
    return f'on: {len(params.tune.lrs)} rates × {params.tune.epochs} epochs per method'
