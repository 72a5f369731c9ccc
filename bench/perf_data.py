"""Throughput of the training data path and where a training iteration's time goes.

Two measurements for ``python -m bench perf`` (:mod:`bench.perf`):

- :func:`data_path_rows`: images per second per core through MMPose's per-sample train
  pipeline (``LoadImage`` ... ``PackPoseInputs`` + ``PoseDataPreprocessor``) and through the
  batched path (:mod:`bench.datasets.batched_topdown`), both with one torch thread, per codec.
- :func:`iteration_rows`: a short real training (MMEngine ``Runner``, the default profile's
  model, batch and geometry) with each data path; per iteration (median over the last epoch):
  waiting for the loader, the batch's augmentation/crop/targets (the data preprocessor), the
  forward/backward/optimizer step, and the rest (hooks, logging).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook

from bench.params import Params

#: Share of a training iteration that the data may take (the throughput issue's target).
DATA_SHARE_TARGET = 0.10


def _one_thread(fn):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(n)


def data_path_rows(params: Params, n_images: int,
                   methods=('regression_dark', 'cls_ohem')) -> list[dict]:
    """µs per training image with one core: MMPose's per-sample path vs the batched one."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS, MODELS

    from bench.config import build_config
    init_default_scope('mmpose')
    bs = params.train.batch_size
    rows = []
    for method in methods:
        if method not in params.methods:
            continue
        times = {}
        for path in ('mmpose', 'batched'):
            p = params.model_copy(update=dict(train=params.train.model_copy(
                update=dict(data_path=path))))
            cfg = build_config(p, method, seed=0)
            dataset = DATASETS.build(cfg.train_dataloader.dataset)
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
            pre = MODELS.build(cfg.model).data_preprocessor
            # whole batches, at least one (a quick run asks for fewer images than a batch)
            n = min(max(n_images, bs), len(dataset)) // bs * bs
            if n == 0:
                raise ValueError(f'data_path benchmark: {len(dataset)} images, fewer than one '
                                 f'batch of {bs}')

            def epoch():
                for start in range(0, n, bs):
                    pre(pseudo_collate([dataset[i] for i in range(start, start + bs)]), True)

            np.random.seed(0)
            _one_thread(lambda: epoch() if n <= bs else [pre(pseudo_collate(
                [dataset[i] for i in range(bs)]), True)])  # warm-up (decodes the cache)
            t0 = time.perf_counter()
            _one_thread(epoch)
            times[path] = (time.perf_counter() - t0) / n * 1e6
        rows.append(dict(benchmark='data_path',
                         case=f'{method}: µs per training image, 1 core (batch {bs})',
                         ours_us=times['batched'], mmpose_us=times['mmpose']))
    return rows


class _IterTimer(Hook):
    """Hook recording, per training iteration, the loader wait, the data preprocessor, the
    train step and the whole iteration (``time.perf_counter``)."""
    priority = 'VERY_LOW'

    def __init__(self):
        super().__init__()
        self.rows = []
        self._end = self._start = 0.0
        self.pre_s = 0.0
        self.step_s = 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._start = time.perf_counter()
        self.rows.append(dict(epoch=runner.epoch, loader=self._start - self._end))
        self.pre_s = self.step_s = 0.0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._end = time.perf_counter()  # the last hook to run (priority VERY_LOW)
        row = self.rows[-1]
        row.update(preprocess=self.pre_s, step=self.step_s,
                   total=row['loader'] + self._end - self._start)

    def before_train_epoch(self, runner):
        self._end = time.perf_counter()


def _train_breakdown(params: Params, method: str, work: Path, epochs: int = 2) -> dict:
    from mmengine.runner import Runner

    from bench.config import build_config
    from bench.engine.safe_load import allow_mmengine_checkpoints
    p = params.model_copy(update=dict(train=params.train.model_copy(
        update=dict(epochs=epochs, val_interval=10 ** 6, milestones=()))))
    cfg = build_config(p, method, seed=0, work_dir=work)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6, save_last=False)
    cfg.custom_hooks = [dict(type='EpochSeedHook', seed=0)]
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    timer = _IterTimer()
    model = runner.model
    pre_forward = model.data_preprocessor.forward
    train_step = model.train_step

    def timed_pre(*a, **k):
        t0 = time.perf_counter()
        out = pre_forward(*a, **k)
        timer.pre_s += time.perf_counter() - t0
        return out

    def timed_step(*a, **k):
        t0 = time.perf_counter()
        out = train_step(*a, **k)
        timer.step_s += time.perf_counter() - t0
        return out

    model.data_preprocessor.forward = timed_pre
    model.train_step = timed_step
    runner.register_hook(timer, priority='VERY_LOW')
    runner.train()
    # the last epoch but its first iteration (the loader's start); means, so that the parts
    # add up to the iteration
    last = [r for r in timer.rows if r['epoch'] == epochs - 1][1:] or timer.rows[-1:]
    mean = {k: statistics.fmean(r[k] for r in last)
            for k in ('loader', 'preprocess', 'step', 'total')}
    return dict(loader=mean['loader'], augment=mean['preprocess'],
                fwd_bwd=mean['step'] - mean['preprocess'],
                other=mean['total'] - mean['loader'] - mean['step'], total=mean['total'],
                iterations=len(last))


def iteration_rows(params: Params, method: str = 'regression_dark', epochs: int = 2) -> list[dict]:
    """Per-iteration breakdown (ms, mean over the last epoch) of a short real training with
    each data path, with the thread count a run of the profile gets (``train.parallel_runs``
    side by side: cores / parallel_runs threads each)."""
    from bench.stages.parallel import threads_per_run
    rows = []
    threads = threads_per_run(params.train.parallel_runs)
    saved = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        for path in ('mmpose', 'batched'):
            p = params.model_copy(update=dict(train=params.train.model_copy(
                update=dict(data_path=path))))
            torch.set_num_threads(threads)
            try:
                b = _train_breakdown(p, method, Path(tmp) / path, epochs=epochs)
            finally:
                torch.set_num_threads(saved)
            data = b['loader'] + b['augment']
            rows.append(dict(data_path=path, method=method, threads=threads,
                             batch=params.train.batch_size, iterations=b['iterations'],
                             loader_ms=b['loader'] * 1e3, augment_ms=b['augment'] * 1e3,
                             fwd_bwd_ms=b['fwd_bwd'] * 1e3, other_ms=b['other'] * 1e3,
                             iteration_ms=b['total'] * 1e3,
                             data_share=data / b['total']))
    return rows


def iteration_markdown(rows: list[dict]) -> list[str]:
    import pandas as pd
    df = pd.DataFrame(rows).round(3)
    batched = [r for r in rows if r['data_path'] == 'batched']
    lines = ['## One training iteration, default profile', '',
             'A short real training (MMEngine `Runner`, default model, batch and geometry, '
             'with the torch threads one run of the profile gets: `threads`, cores / '
             '`train.parallel_runs`); mean over the last epoch but its first iteration. '
             '`loader_ms`: waiting for the '
             'dataloader (decode and per-sample transforms on the `mmpose` path); `augment_ms`: '
             'the data preprocessor (normalisation; on the `batched` path also the draws, the '
             'crop and the targets); `fwd_bwd_ms`: forward, loss, backward and optimizer step; '
             '`other_ms`: hooks and logging. `data_share` = (loader + augment) / iteration.', '',
             df.to_markdown(index=False), '']
    if batched:
        share = batched[0]['data_share']
        lines += [f'Data share of an iteration with the batched path: **{share:.1%}** '
                  f'(target ≤ {DATA_SHARE_TARGET:.0%}: '
                  f'{"met" if share <= DATA_SHARE_TARGET else "NOT met"}).', '']
    return lines
