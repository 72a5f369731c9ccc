"""What a method costs: parameters and FLOPs of its head and of the whole network, the time of
one training step and of inference per image (issue #17, the cost columns).

Import-light: torch, MMEngine and MMPose are imported inside the functions.

- :func:`model_complexity` (from a resolved config): ``head_params``, ``head_flops`` (the head
  alone, fed the real backbone(+neck) feature maps of one input), ``model_params`` and
  ``model_flops`` (backbone + neck + head, one input), counted by MMEngine's
  :func:`mmengine.analysis.get_model_complexity_info`.
- :func:`inference_ms`: median wall milliseconds per image of ``model.test_step`` (or of the
  bare network forward) in eval mode, no grad, random input, warm-up excluded.
- :func:`train_step_ms_from_scalars`: the median logged ``time`` of the last epoch of an
  MMEngine ``vis_data/scalars.json``, in milliseconds.
- :func:`cost_row`: all of them for one run, the row
  :func:`bench.report.cost_table.cost_table` reads.

**What FLOPs counts.** MMEngine's counter is fvcore's: it traces one forward with
``torch.jit`` and applies a handle per operator. One multiply-add is **one** FLOP (so "FLOPs"
here are MACs): a convolution counts ``N * H_out * W_out * C_out * C_in / groups * k_h * k_w``
(a transposed one ``N * H_in * W_in * C_in * C_out / groups * k_h * k_w``), a linear layer
``N * in * out``, matmul/bmm/einsum their multiply-adds; biases are not counted. Batch norm in
eval mode counts 2 per element (1 without affine), adaptive average pooling 1 per input element,
nearest / bilinear upsampling 1 / 4 per output element. Element-wise operators (ReLU, residual
additions, softmax, exp, mul, sum: DSNT's expectation, for one) are **not** counted; those that
appear are listed in ``uncounted_ops`` (op name -> number of calls). Counted in eval mode, batch
size 1, on a zero input of the codec's input size; the data preprocessor (normalisation) and the
decoder are not part of the count.

**What parameters count.** Trainable and frozen parameters of the modules that run at inference:
the head's loss module (``loss_module``; e.g. RLE's RealNVP flow, used only by the training loss)
is counted apart in ``head_loss_params`` and left out of ``head_params`` and ``model_params``.
MMEngine's own total for the head is ``head_params + head_loss_params``.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

#: The columns of one run's cost row (besides ``method`` and ``seed``)
COST_FIELDS = ('head_params', 'head_flops', 'model_params', 'model_flops', 'train_step_ms',
               'infer_ms')


# ------------------------------------------------------------------------------ model & count

def build_model(cfg):
    """The ``TopdownPoseEstimator`` (or other pose model) of a resolved config, in eval mode,
    on the CPU, with its constructors' initial weights (no checkpoint: costs do not depend on
    the weights)."""
    import bench
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    bench.register_modules()
    register_all_modules(init_default_scope=True)  # no Runner here to set MMPose's scope
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    return model.eval()


def input_size_of(cfg) -> tuple[int, int]:
    """(w, h) of the network input: the codec's ``input_size``, else the test pipeline's
    ``TopdownAffine``."""
    codec = cfg.get('codec')
    if codec and codec.get('input_size'):
        return _wh(codec['input_size'])
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'TopdownAffine':
            return _wh(t['input_size'])
    raise ValueError('no input size: the config has no codec.input_size and no TopdownAffine')


def _wh(size) -> tuple[int, int]:
    w, h = (int(s) for s in size)
    return w, h


def _inference_params(module) -> tuple[int, int]:
    """(parameters outside loss modules, parameters inside them). A loss module is a
    submodule whose attribute path has a component containing 'loss' (``loss_module``)."""
    main = loss = 0
    for name, p in module.named_parameters():
        if any('loss' in part for part in name.split('.')[:-1]):
            loss += p.numel()
        else:
            main += p.numel()
    return main, loss


class _DropAnalysisWarnings(logging.Filter):
    """Hide the analyzers' per-op warnings (they are returned as ``uncounted_ops``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith('Unsupported operator')
                    or msg.startswith('The following submodules of the model were never'))


@contextmanager
def _quiet_analysis() -> Iterator[None]:
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    f = _DropAnalysisWarnings()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


def count(module, inputs: tuple) -> dict[str, Any]:
    """FLOPs and parameters of ``module(*inputs)`` by MMEngine's
    ``get_model_complexity_info(module, inputs=inputs)`` (see the module docstring for what is
    counted); ``uncounted_ops``: the traced operators with no FLOP handle, with their counts."""
    import torch
    from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

    with _quiet_analysis(), torch.no_grad():
        info = get_model_complexity_info(module, inputs=inputs, show_table=False,
                                         show_arch=False)
        analyzer = FlopAnalyzer(module, inputs)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        assert analyzer.total() == int(info['flops'])
        uncounted = dict(sorted(analyzer.unsupported_ops().items()))
    params, loss_params = _inference_params(module)
    assert params + loss_params == int(info['params'])
    return dict(flops=int(info['flops']), params=params, loss_params=loss_params,
                uncounted_ops=uncounted)


def _network(model):
    """``model._forward`` (backbone, neck, head: raw head outputs) as a module of one input."""
    import torch

    class Network(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model._forward(x)

    return Network(model)


def model_complexity(cfg, input_size: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Parameters and FLOPs of the model of a resolved config (see the module docstring for
    what is counted), on one zero input of ``input_size`` (w, h; default
    :func:`input_size_of`).

    Returns:
        dict with ``head_type``, ``input_size`` (w, h), ``feature_shapes`` (the shapes of the
        backbone(+neck) features the head is fed), ``head_params``, ``head_loss_params`` (train-
        only parameters of the head's loss, e.g. RLE's flow), ``head_flops``, ``model_params``,
        ``model_flops``, and ``head_uncounted_ops`` / ``model_uncounted_ops``.
    """
    import torch

    model = build_model(cfg)
    w, h = _wh(input_size) if input_size is not None else input_size_of(cfg)
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        feats = model.extract_feat(x)
    if isinstance(feats, torch.Tensor):
        feats = (feats,)
    feats = tuple(feats)
    head = count(model.head, (feats,))
    net = count(_network(model), (x,))
    return dict(head_type=type(model.head).__name__, input_size=(w, h),
                feature_shapes=[tuple(f.shape) for f in feats],
                head_params=head['params'], head_loss_params=head['loss_params'],
                head_flops=head['flops'], model_params=net['params'], model_flops=net['flops'],
                head_uncounted_ops=head['uncounted_ops'],
                model_uncounted_ops=net['uncounted_ops'])


# -------------------------------------------------------------------------------------- time

def num_keypoints_of(model) -> int:
    """K of a pose model's head (``num_keypoints``, ``out_channels`` or ``num_joints``; the
    project's PixelClassHead keeps K there although it emits K + 1 channels)."""
    head = model.head
    for attr in ('num_keypoints', 'num_joints', 'out_channels'):
        k = getattr(head, attr, None)
        if isinstance(k, int):
            return k
    raise ValueError(f'cannot tell K of head {type(head).__name__}')


def _decoder_input_size(model) -> tuple[int, int]:
    """(w, h) from the head's decoder (or, for a composite codec such as
    ``IntegralRegressionLabel``, from one of the codecs it holds)."""
    decoder = getattr(model.head, 'decoder', None)
    candidates = [decoder] + list(vars(decoder).values()) if decoder is not None else []
    for c in candidates:
        size = getattr(c, 'input_size', None)
        if size is not None:
            return _wh(size)
    raise ValueError('input_size not given and the head has no decoder to read it from')


def _random_batch(batch_size: int, w: int, h: int, k: int, gen) -> dict:
    """A ``test_step`` batch as the test loader hands it out: uint8 (3, h, w) crops and
    ``PoseDataSample``s with the metainfo that decoding and flip test read."""
    import numpy as np
    import torch
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    inputs = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
              for _ in range(batch_size)]
    samples = []
    for _ in range(batch_size):
        s = PoseDataSample(metainfo=dict(
            input_size=(w, h), input_center=np.array([w / 2, h / 2], np.float32),
            input_scale=np.array([w, h], np.float32), flip_indices=list(range(k)),
            img_shape=(h, w), ori_shape=(h, w)))
        s.gt_instances = InstanceData(bboxes=np.array([[0, 0, w, h]], np.float32),
                                      bbox_scores=np.ones(1, np.float32))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def inference_ms(model, batch_size: int = 32, repeats: int = 20,
                 input_size: Optional[Sequence[int]] = None, *, warmup: int = 3,
                 what: str = 'test_step', seed: int = 0) -> float:
    """Median wall milliseconds per image of inference on random input.

    ``what='test_step'``: ``model.test_step(batch)``, what the evaluate stage runs per batch:
    data preprocessing (normalisation), the forward pass(es) (two with the config's flip test),
    the head's decoding and the mapping back to the image. ``what='forward'``: the bare network
    (``model._forward`` on an already normalised tensor: backbone, neck, head, one pass).

    The model is put in eval mode and run without gradients; ``warmup`` batches are run first
    and not timed; each of ``repeats`` batches of ``batch_size`` is timed alone (the batch is
    made outside the timer) and divided by ``batch_size``; the median is returned. Threads are
    whatever the caller set (``torch.set_num_threads``). ``input_size`` (w, h) defaults to the
    head decoder's ``input_size``.
    """
    import torch

    if what not in ('test_step', 'forward'):
        raise ValueError(f"what must be 'test_step' or 'forward', not {what!r}")
    if input_size is None:
        input_size = _decoder_input_size(model)
    w, h = _wh(input_size)
    k = num_keypoints_of(model) if what == 'test_step' else 0
    gen = torch.Generator().manual_seed(seed)
    model.eval()

    def make():
        if what == 'test_step':
            return _random_batch(batch_size, w, h, k, gen)
        return torch.randn(batch_size, 3, h, w, generator=gen)

    def call(batch):
        if what == 'test_step':
            return model.test_step(batch)
        return model._forward(batch)

    samples = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            batch = make()
            t0 = time.perf_counter()
            call(batch)
            dt = time.perf_counter() - t0
            if i >= warmup:
                samples.append(dt * 1e3 / batch_size)
    return float(statistics.median(samples))


def train_step_ms_from_scalars(path: str | Path, last_epochs: int = 1) -> float:
    """Median training-iteration time over the last ``last_epochs`` epoch(s) logged in an
    MMEngine ``vis_data/scalars.json``, in milliseconds; NaN when it holds no training line.

    The file is JSON lines; training lines (those with ``epoch``, ``iter`` and ``time``) carry
    MMEngine's ``time``: seconds per iteration (data loading, forward, backward, optimizer step,
    hooks), as the ``LoggerHook`` logs it every ``interval`` iterations, averaged by the
    ``LogProcessor`` over its window of recent iterations (MMPose's default runtime: 50; the
    window can reach back into the previous epoch). Validation lines (metrics, their own
    ``time``, no ``iter``) are skipped, as are blank or broken lines (a run killed mid-write).
    """
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and all(k in row for k in ('epoch', 'iter', 'time')):
            rows.append(row)
    if not rows:
        return math.nan
    last = max(int(r['epoch']) for r in rows)
    times = [float(r['time']) for r in rows if int(r['epoch']) > last - last_epochs]
    return float(statistics.median(times)) * 1e3


def find_scalars(work_dir: str | Path) -> Optional[Path]:
    """The newest ``<timestamp>/vis_data/scalars.json`` of an MMEngine work dir (a resumed run
    has one folder per start; the newest holds the last epoch), or None."""
    found = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    return found[-1] if found else None


def cost_row(cfg, *, work_dir: str | Path | None = None, batch_size: int = 32,
             repeats: int = 20, complexity: Optional[dict] = None) -> dict[str, float]:
    """The cost columns (:data:`COST_FIELDS`) of one run: :func:`model_complexity` of its
    config (or ``complexity`` when already counted: it does not depend on the seed), the
    training step time from ``work_dir``'s newest ``scalars.json`` (NaN without one) and
    :func:`inference_ms` (``test_step``) of a freshly built model at the caller's threads."""
    c = complexity if complexity is not None else model_complexity(cfg)
    scalars = find_scalars(work_dir) if work_dir is not None else None
    train_ms = train_step_ms_from_scalars(scalars) if scalars is not None else math.nan
    infer = inference_ms(build_model(cfg), batch_size=batch_size, repeats=repeats,
                         input_size=input_size_of(cfg))
    return dict(head_params=c['head_params'], head_flops=c['head_flops'],
                model_params=c['model_params'], model_flops=c['model_flops'],
                train_step_ms=train_ms, infer_ms=infer)
