"""Hooks that every posebench run adds to MMEngine's ``Runner`` (registered in ``HOOKS``)."""
from __future__ import annotations

import math
import random
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmpose.registry import HOOKS

from bench.engine.inference import input_from_original, test_cfg_override, to_input_frame, uses_udp
from bench.engine.seeding import epoch_generator
from bench.errors import DivergenceError  # noqa: F401  (raised here; also imported from here)


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Stop a run at the first non-finite loss, or non-finite weights at the end of an epoch.

    MMEngine would otherwise train on NaNs to the end and write checkpoints full of them.

    Args:
        run_name (str): ``<method>/seed<k>``, named in the error.
        check_weights_every (int): also check every parameter each this many iterations.
    """
    priority = 'VERY_HIGH'

    def __init__(self, run_name: str = 'run', check_weights_every: int = 50):
        self.run_name = run_name
        self.check_weights_every = check_weights_every

    def _fail(self, runner, what: str) -> None:
        raise DivergenceError(
            f'run {self.run_name} diverged at epoch {runner.epoch + 1}, iteration '
            f'{runner.iter + 1}: {what}; lower train.lr or check the loss settings')

    def _check_weights(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        for name, p in model.named_parameters():
            if not torch.isfinite(p).all():
                self._fail(runner, f'non-finite weights in {name}')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for key, value in (outputs or {}).items():
            value = float(value.detach()) if torch.is_tensor(value) else float(value)
            if 'loss' in key and not math.isfinite(value):
                self._fail(runner, f'{key}={value}')
        if (runner.iter + 1) % self.check_weights_every == 0:
            self._check_weights(runner)

    def after_train_epoch(self, runner):
        self._check_weights(runner)


@HOOKS.register_module()
class ProgressHook(Hook):
    """Write the run's progress to ``out_file`` (JSON, atomically) when training starts (so
    that the display counts the run as running from its first iteration), after every training
    epoch and after every validation: ``epoch``, ``max_epochs`` and ``val_pck`` (the last
    validation PCK@0.1, None before the first), for the stage's progress display
    (:class:`bench.console.StageProgress`), which may run in another process. Reads nothing
    the training uses and draws no random number.

    Args:
        out_file (str): where to write (``<work_dir>/progress.json``).
        metric (str): the validation metric to report. Defaults to ``'PCK'``.
    """

    def __init__(self, out_file: str, metric: str = 'PCK'):
        self.out_file = Path(out_file)
        self.metric = metric
        self.val_pck = None

    def _write(self, runner) -> None:
        import json
        if runner.rank != 0:  # one writer per run: ranks racing on one temporary file crash
            return
        tmp = self.out_file.with_suffix('.tmp')
        tmp.write_text(json.dumps(dict(epoch=runner.epoch, max_epochs=runner.max_epochs,
                                       val_pck=self.val_pck)))
        tmp.replace(self.out_file)

    def before_train(self, runner) -> None:
        self._write(runner)

    def after_train_epoch(self, runner) -> None:
        self._write(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        value = (metrics or {}).get(self.metric)
        if value is not None:
            self.val_pck = float(value)
            self._write(runner)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Train in the channels-last memory format (NHWC): the model's weights before training,
    and the batches (``BatchTopdownPreprocessor.channels_last``).

    PyTorch's CPU convolutions (oneDNN) run faster on NHWC: one training step of the default
    model took 17-33% less time here (``python -m bench perf``). The parameters stay the same
    objects (the optimizer keeps them); the numbers differ from NCHW training only by the order
    of floating-point sums, and stay deterministic.
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        model.to(memory_format=torch.channels_last)
        if hasattr(model.data_preprocessor, 'channels_last'):
            model.data_preprocessor.channels_last = True


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Re-seed the augmentation RNGs at every epoch.

    With data loading in the main process (``num_workers=0``), MMPose's transforms draw from
    the global numpy RNG, whose state a checkpoint does not hold. Seeding each epoch from
    (seed, epoch) makes every epoch reproducible on its own, so a run resumed at epoch e draws
    exactly the augmentations an uninterrupted run draws. With workers, the train loader gets a
    generator seeded from (seed, epoch, rank), from which PyTorch derives each worker's seed
    (:mod:`bench.engine.seeding`): a new stream every epoch, the same one for the same seed.

    Args:
        seed (int): the run's seed.
    """
    priority = 'VERY_HIGH'

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def before_train_epoch(self, runner):
        epoch_seed = int(np.random.SeedSequence([self.seed, runner.epoch]).generate_state(1)[0])
        np.random.seed(epoch_seed)
        random.seed(epoch_seed)
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 0) > 0:
            loader.generator = epoch_generator(self.seed, runner.epoch, runner.rank)


@HOOKS.register_module()
class DVCLiveLoggerHook(Hook):
    """Per-epoch learning curves through DVCLive, one directory per run.

    Stock ``DVCLiveVisBackend`` is avoided on purpose: without a git identity it runs
    ``dvc init -f --no-scm``, which wipes the project's ``.dvc/`` and its cache. Here DVCLive
    writes plain files (``dvcyaml=False``, no experiment saving); ``dvc.yaml`` declares them.

    Logged per epoch: the mean of every training log variable (``train/loss``, ``train/loss_kpt``,
    ``train/acc_pose``, the classification losses' ``bg_part``/``fg_part``/``bg_kept``...),
    ``train/part_ratio`` (mean ``bg_part`` / mean ``fg_part``, when logged) and every
    validation metric (``val/PCK``, ``val/EPE``).

    Args:
        live_dir (str): DVCLive directory of this run.
    """
    priority = 'LOW'

    def __init__(self, live_dir: str):
        self.live_dir = live_dir
        self._live = None
        self._sums = defaultdict(float)
        self._count = 0

    def before_train(self, runner):
        if runner.rank != 0:  # one writer per run
            return
        from dvclive import Live
        resuming = runner.epoch > 0
        if resuming:
            _truncate_tsv(Path(self.live_dir), keep_below=runner.epoch + 1)
        self._live = Live(self.live_dir, resume=resuming, dvcyaml=False, save_dvc_exp=False,
                          report=None, monitor_system=False)

    def before_train_epoch(self, runner):
        self._sums.clear()
        self._count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for key, value in (outputs or {}).items():
            self._sums[key] += float(value.detach()) if torch.is_tensor(value) else float(value)
        self._count += 1

    def after_train_epoch(self, runner):
        if self._live is None:
            return
        self._live.step = runner.epoch + 1
        means = {key: total / max(self._count, 1) for key, total in self._sums.items()}
        for key, mean in means.items():
            self._live.log_metric(f'train/{key}', mean)
        if means.get('fg_part', 0) > 0 and 'bg_part' in means:
            # of the epoch means: the balance the optimiser saw over the epoch
            self._live.log_metric('train/part_ratio', means['bg_part'] / means['fg_part'])
        self._live.log_metric('train/lr', float(runner.optim_wrapper.get_lr()['lr'][0]))

    def after_val_epoch(self, runner, metrics=None):
        if self._live is None:
            return
        self._live.step = runner.epoch
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float, np.floating)):
                self._live.log_metric(f'val/{key}', float(value))
        self._live.make_summary()

    def after_train(self, runner):
        if self._live is not None:
            self._live.make_summary()
            self._live.end()


def _truncate_tsv(live_dir: Path, keep_below: int) -> None:
    """Drop rows logged for epochs that a resumed run will train again."""
    for tsv in live_dir.glob('plots/metrics/**/*.tsv'):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        header = lines[0].split('\t')
        step = header.index('step')
        kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split('\t')[step]) < keep_below]
        tsv.write_text('\n'.join(kept) + '\n')


@HOOKS.register_module()
class HeatmapSnapshotHook(Hook):
    """Save the predicted heatmaps of a fixed set of validation images at chosen epochs.

    Each snapshot is ``<out_dir>/epoch_<e>.npz`` with ``images`` (n, h, w, 3) uint8 RGB model
    inputs, ``heatmaps`` (n, C, H, W) float32 (C = K for regression, K+1 with background first
    for classification), ``keypoints`` (n, K, 2) predictions and ``gt`` (n, K, 2) annotated
    keypoints, both in model-input pixels (the frame of ``images``; UDP's warp for a UDP
    pipeline), and ``gt_visible`` (n, K) bool, the labelled keypoints. The final epoch is always
    saved.

    What the maps are, per head (what its ``predict`` returns with ``output_heatmaps``):
    the K heatmaps (HeatmapHead, SigmoidHeatmapHead: probabilities), the K+1 softmax maps
    (PixelClassHead), DSNT's K soft-maxed maps (each sums to 1). SimCC has no maps: it gets the
    outer product of its two 1-D distributions (the softmax of each vector, what its KL loss
    trains; each divided by its maximum, so the map is 1 at the mode), sampled at the heatmap
    grid's pixels (pixel j at input pixel j x stride, MMPose's convention; the head's
    ``heatmap_size``), so that its snapshot has the same grid as the heatmap methods'. A head
    without maps (RLE) gets no snapshot.

    Args:
        out_dir (str): where the snapshots go.
        epochs (list[int]): 1-based epochs to snapshot.
        num_images (int): the first ``num_images`` validation samples.
    """
    priority = 'LOW'

    def __init__(self, out_dir: str, epochs=(1, 5, 15), num_images: int = 4):
        self.out_dir = Path(out_dir)
        self.epochs = set(int(e) for e in epochs)
        self.num_images = num_images
        self._no_maps = False

    def after_train_epoch(self, runner):
        epoch = runner.epoch + 1
        if runner.rank != 0 or (epoch not in self.epochs and epoch != runner.max_epochs):
            return
        if self._no_maps:
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        dataset = runner.val_dataloader.dataset
        n = min(self.num_images, len(dataset))
        batch = pseudo_collate([dataset[i] for i in range(n)])
        with test_cfg_override(model, output_heatmaps=True, flip_test=False), \
                torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # SimCCHead warns that it normalises its vectors
            samples = model.test_step(batch)
            heatmaps = _snapshot_maps(model, batch, samples)
        if heatmaps is None:
            self._no_maps = True
            # the run's snapshot folder still exists (it is part of a DVC output), and says why
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / 'NO_SNAPSHOTS.txt').write_text(
                f'head {type(model.head).__name__} outputs no heatmaps: nothing to snapshot\n')
            logger = getattr(runner, 'logger', None)
            if logger is not None:
                logger.info(f'HeatmapSnapshotHook: head {type(model.head).__name__} outputs no '
                            f'heatmaps; no snapshots')
            return
        images = np.stack([x.permute(1, 2, 0).numpy()[..., ::-1] for x in batch['inputs']])
        # Predictions come back in original-image pixels, and so does the validation ground
        # truth (the val pipeline keeps no `transformed_keypoints`): the figure draws on the
        # model input, so both go through the warp that made that input.
        udp = uses_udp(dataset)
        warp = np.stack([input_from_original(s.metainfo, use_udp=udp) for s in samples])
        kpts = np.stack([s.pred_instances.keypoints[0] for s in samples])
        gts = np.stack([s.gt_instances.keypoints[0] for s in samples])
        visible = np.stack([np.asarray(s.gt_instances.keypoints_visible[0]) > 0
                            for s in samples])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.out_dir / f'epoch_{epoch:03d}.npz', images=images,
                            heatmaps=heatmaps.astype(np.float32),
                            keypoints=to_input_frame(kpts, warp), gt=to_input_frame(gts, warp),
                            gt_visible=visible, epoch=epoch)


def _snapshot_maps(model, batch, samples) -> np.ndarray | None:
    """(n, C, H, W) maps of a snapshot batch (see :class:`HeatmapSnapshotHook`), or None when
    the head returned none. Runs in the hook's eval / no-grad block."""
    from mmpose.models.heads import SimCCHead
    head = model.head
    if isinstance(head, SimCCHead):
        data = model.data_preprocessor(batch, False)
        x, y = (v.float().softmax(-1) for v in head.forward(model.extract_feat(data['inputs'])))
        x = x / x.amax(-1, keepdim=True)
        y = y / y.amax(-1, keepdim=True)
        return simcc_maps(x.cpu().numpy(), y.cpu().numpy(), head.heatmap_size,
                          head.input_size, head.simcc_split_ratio)
    if not all(hasattr(s, 'pred_fields') and 'heatmaps' in s.pred_fields for s in samples):
        return None
    return np.stack([s.pred_fields.heatmaps.cpu().numpy() for s in samples])


def simcc_maps(x: np.ndarray, y: np.ndarray, heatmap_size, input_size,
               split_ratio: float) -> np.ndarray:
    """SimCC's 1-D distributions (n, K, Wx) and (n, K, Wy) as (n, K, H, W) maps on a heatmap
    grid: ``map[j, i] = y(j s_y r) x(i s_x r)``, each vector linearly interpolated at the bin of
    heatmap pixel (i, j) (heatmap pixel i at input pixel i s_x, s = input / heatmap size, bin b
    at input pixel b / r)."""
    W, H = (int(v) for v in heatmap_size)
    w, h = (float(v) for v in input_size)
    bx = np.arange(W) * (w / W) * split_ratio
    by = np.arange(H) * (h / H) * split_ratio

    def sample(v: np.ndarray, at: np.ndarray) -> np.ndarray:
        grid = np.arange(v.shape[-1])
        flat = v.reshape(-1, v.shape[-1])
        return np.stack([np.interp(at, grid, row) for row in flat]).reshape(*v.shape[:-1],
                                                                            at.size)
    sx, sy = sample(np.asarray(x, np.float64), bx), sample(np.asarray(y, np.float64), by)
    return sy[..., :, None] * sx[..., None, :]
