"""The schema of ``params.yaml``: every stage loads its section through :func:`load_params`.

A wrong key, type or value stops the stage *before* it does any work, with one line naming the
key, the value and what is allowed (:class:`ParamsError`). Params are parsed with
``yaml.safe_load`` and never evaluated.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import ParamsError  # noqa: F401  (raised here; also imported from here)

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / 'mmpose_configs'
# Where the embedded generator writes (a DVC output, so it is fixed, not a parameter).
STICKMAN_ROOT = 'data/stickman'


def workdir() -> Path:
    """The folder that holds ``params.yaml``, ``data/``, ``runs/`` and ``reports/``: the current
    directory (where ``dvc repro`` runs the stages), or ``$POSEBENCH_WORKDIR``."""
    return Path(os.environ.get('POSEBENCH_WORKDIR') or Path.cwd()).resolve()


# The losses that `import bench` registers in MMPose's MODELS (bench/models/losses.py): a loss
# of these is known without importing MMPose (seconds), so that `check-params` answers at once
# for the shipped params; tests/test_params.py keeps this set equal to the registered ones.
PROJECT_LOSSES = frozenset({'PixelCrossEntropyLoss', 'PixelFocalLoss', 'PeakFocalHeatmapLoss',
                            'FiniteJSDiscretLoss'})


def _registered_models() -> set[str]:
    # Imported lazily: MMPose's model registry costs seconds and only other losses need it.
    import mmpose.models  # noqa: F401  (fills the registry)
    from mmpose.registry import MODELS

    import bench
    bench.register_modules()  # our losses (`python -m bench` defers it to the command line)
    return set(MODELS.module_dict)


class _Strict(BaseModel):
    model_config = ConfigDict(extra='forbid', frozen=True)


class StickmanParams(_Strict):
    """Knobs of the embedded generator; see :class:`bench.data.stickman.StickmanConfig`."""
    image_size: tuple[int, int] = (128, 128)
    train: int = Field(1500, ge=1)
    val: int = Field(200, ge=1)
    test: int = Field(300, ge=1)
    scale_range: tuple[float, float] = (0.55, 0.9)
    clutter_shapes: int = Field(6, ge=0)
    distractor_limbs: int = Field(3, ge=0)
    occluder_prob: float = Field(0.3, ge=0, le=1)
    second_figure_prob: float = Field(0.3, ge=0, le=1)
    truncation_prob: float = Field(0.15, ge=0, le=1)
    blur_prob: float = Field(0.3, ge=0, le=1)
    noise_std: float = Field(6.0, ge=0)
    back_view_prob: float = Field(0.2, ge=0, le=1)
    profile_prob: float = Field(0.15, ge=0, le=1)
    min_keypoints: int = Field(8, ge=1, le=17)
    max_rotation: float = Field(180.0, ge=0, le=180)

    @field_validator('image_size')
    @classmethod
    def _positive_size(cls, v):
        if min(v) < 16:
            raise ValueError('both sides must be >= 16 px')
        return v

    @field_validator('scale_range')
    @classmethod
    def _scale(cls, v):
        if not 0 < v[0] <= v[1] <= 1.5:
            raise ValueError('must satisfy 0 < low <= high <= 1.5')
        return v


class CocoParams(_Strict):
    """A COCO-format keypoint dataset already on disk (``data.source: coco``)."""
    ann_files: dict[Literal['train', 'val', 'test'], str] = {
        'train': 'annotations/train.json', 'val': 'annotations/val.json',
        'test': 'annotations/test.json'}
    img_prefix: str = 'images/'
    root: str = 'data/coco'
    # CocoMetric's settings; None: from the metainfo's dataset_name, as MMPose's own dataset
    # configs set them (CrowdPose: no 'area' field, crowd IoU), else COCO's (see
    # bench.config.coco_metric_settings)
    use_area: Optional[bool] = None
    iou_type: Optional[Literal['keypoints', 'keypoints_crowd']] = None

    @field_validator('ann_files')
    @classmethod
    def _all_splits(cls, v):
        missing = {'train', 'val', 'test'} - set(v)
        if missing:
            raise ValueError(f'missing split(s) {sorted(missing)}')
        return v


class DataParams(_Strict):
    source: Literal['stickman', 'coco'] = 'stickman'
    seed: int = 0
    workers: int = Field(2, ge=1, le=64)
    # MMPose metainfo file (keypoint names, flip pairs, sigmas): K comes from here.
    metainfo: str = 'configs/_base_/datasets/coco.py'
    stickman: StickmanParams = StickmanParams()
    coco: CocoParams = CocoParams()


class BackboneParams(_Strict):
    depth: Literal[18, 34, 50, 101, 152] = 18
    stem_channels: int = Field(16, ge=4)
    base_channels: int = Field(16, ge=4)
    # 32: the stock ResNet; 16 / 8: the last one / two stages keep their resolution (stride 1),
    # for small inputs whose stride-32 features would be 2x2
    output_stride: Literal[8, 16, 32] = 32


class ModelParams(_Strict):
    backbone: BackboneParams = BackboneParams()
    deconv_channels: tuple[int, ...] = (32, 32, 32)
    input_size: tuple[int, int] = (64, 64)
    heatmap_size: tuple[int, int] = (16, 16)
    sigma: float = Field(1.5, gt=0, le=10)

    @model_validator(mode='after')
    def _sizes(self):
        if min(self.input_size) < 8 or min(self.heatmap_size) < 4:
            raise ValueError(f'model.input_size={list(self.input_size)} / model.heatmap_size='
                             f'{list(self.heatmap_size)}: input >= 8 px and heatmap >= 4 px')
        if any(h > i for h, i in zip(self.heatmap_size, self.input_size)):
            raise ValueError(f'model.heatmap_size={list(self.heatmap_size)}: must not be larger '
                             f'than model.input_size={list(self.input_size)}')
        # the backbone's output stride; each head deconvolution doubles the resolution
        stride = self.backbone.output_stride
        expected = [i // stride * 2 ** len(self.deconv_channels) for i in self.input_size]
        if any(i % stride for i in self.input_size) or list(self.heatmap_size) != expected:
            raise ValueError(
                f'model.heatmap_size={list(self.heatmap_size)}: with input_size='
                f'{list(self.input_size)} (multiples of {stride}), backbone output stride '
                f'{stride} and {len(self.deconv_channels)} deconvolution(s) the head outputs '
                f'{expected}')
        return self


class GeometryParams(_Strict):
    """One point of the resolution axis (``sweep``): a heatmap size and sigma; the input size
    follows at ``model.input_size / model.heatmap_size`` (the backbone and head are the
    profile's own, so that ratio is fixed)."""
    heatmap_size: tuple[int, int]
    sigma: Optional[float] = Field(None, gt=0, le=10)  # default: model.sigma


def geometry_tag(heatmap_size, sigma: float) -> str:
    """The name of a swept geometry in run folders and tables: ``hm32s2`` (32x32 heatmaps,
    sigma 2), ``hm48x64s1.5`` for non-square heatmaps."""
    w, h = (int(v) for v in heatmap_size)
    return f'hm{w}s{sigma:g}' if w == h else f'hm{w}x{h}s{sigma:g}'


class TuneParams(_Strict):
    """The optional learning-rate search (stage ``tune@<method>``): every method gets the same
    grid, epochs and seed, scored on the validation split; its seeds then train with the
    winner. Off: every method trains with ``train.lr``."""
    enabled: bool = False
    lrs: tuple[float, ...] = (0.002, 0.004, 0.008)
    epochs: int = Field(6, ge=1)
    seed: int = Field(0, ge=0)

    @field_validator('lrs')
    @classmethod
    def _grid(cls, v):
        if not v or any(x <= 0 for x in v):
            raise ValueError('need at least one learning rate, each > 0')
        if len(set(v)) != len(v):
            raise ValueError('duplicate learning rates')
        return tuple(sorted(v))


class TrainParams(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_iters: int = Field(50, ge=0)
    milestones: tuple[int, ...] = ()
    val_interval: int = Field(1, ge=1)
    workers: int = Field(1, ge=0)
    # batched: decoded-once images, augmentation/crop/targets per batch on the training device
    # (bench.datasets.batched_topdown, bench.models.data_preprocessors); mmpose: MMPose's
    # per-sample pipeline (the reference)
    data_path: Literal['batched', 'mmpose'] = 'batched'
    # seeds of a method trained at once, each in its own process with cores / parallel_runs
    # threads (bench/stages/parallel.py); 1: one after another with every core
    parallel_runs: int = Field(1, ge=1, le=64)
    # NHWC weights and batches (bench.engine.hooks.ChannelsLastHook): faster CPU convolutions
    channels_last: bool = True
    launcher: Literal['none', 'pytorch', 'slurm'] = 'none'
    gpus: int = Field(1, ge=1)
    deterministic: bool = True
    # Stop a run whose loss stays non-finite: see bench.engine.hooks.DivergenceGuardHook.
    divergence_guard: bool = True


class MethodParams(_Strict):
    """One formulation: an MMPose config in ``mmpose_configs/`` plus optional overrides."""
    config: str
    # The head's loss (``model.head.loss``); ``type`` must be registered in MMPose's MODELS.
    loss: dict[str, Any] | None = None
    # Further MMEngine ``cfg_options`` (dotted keys), applied last.
    cfg_options: dict[str, Any] = {}
    label: str | None = None

    @field_validator('config')
    @classmethod
    def _config_exists(cls, v):
        if not (CONFIG_DIR / v).is_file():
            raise ValueError(f'no such config mmpose_configs/{v}')
        return v

    @field_validator('loss')
    @classmethod
    def _loss_known(cls, v):
        if v is None:
            return v
        if 'type' not in v:
            raise ValueError("needs a 'type'")
        known = PROJECT_LOSSES if v['type'] in PROJECT_LOSSES else _registered_models()
        if v['type'] not in known:
            listed = sorted(n for n in known if 'Pixel' in n or 'Keypoint' in n)
            raise ValueError(f"unknown loss type {v['type']!r}; registered: "
                             f"{', '.join(listed)}, ...")
        if v['type'] == 'PixelCrossEntropyLoss' and v.get('balance') not in (None, 'count',
                                                                               'value'):
            raise ValueError(f"balance={v['balance']!r}: one of null, 'count' (class-weighted) "
                             f"or 'value' (value-balanced)")
        ratio = v.get('neg_pos_ratio')
        if ratio is not None and not (isinstance(ratio, (int, float)) and ratio > 0):
            raise ValueError(f'neg_pos_ratio={ratio!r}: must be a number > 0 (or null)')
        return v


class EvalParams(_Strict):
    pck_thresholds: tuple[float, ...] = (0.05, 0.1, 0.2)
    snapshot_epochs: tuple[int, ...] = (1, 5, 15)
    snapshot_images: int = Field(4, ge=1, le=32)

    @field_validator('pck_thresholds')
    @classmethod
    def _thr(cls, v):
        if not v or any(not 0 < t <= 1 for t in v):
            raise ValueError('need at least one threshold, each in (0, 1]')
        return tuple(sorted(v))

    @field_validator('snapshot_epochs')
    @classmethod
    def _epochs(cls, v):
        if any(e < 1 for e in v):
            raise ValueError('epochs start at 1')
        return tuple(sorted(set(v)))


class ReportParams(_Strict):
    baseline: str = 'regression'
    headline_metric: str = 'PCK@0.1'
    confidence: float = Field(0.95, gt=0.5, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    n_bootstrap: int = Field(9999, ge=100)
    pck_reach: float = Field(0.5, gt=0, le=1)


class Params(_Strict):
    profile: str = 'default'
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    methods: dict[str, MethodParams]
    active_methods: tuple[str, ...]
    seeds: tuple[int, ...]
    # the resolution axis: geometries trained besides `model`'s own, for every active method
    sweep: tuple[GeometryParams, ...] = ()
    tune: TuneParams = TuneParams()
    eval: EvalParams = EvalParams()
    report: ReportParams = ReportParams()

    def base_geometry(self) -> str:
        """The tag ``model``'s own geometry would have (its runs are untagged)."""
        return geometry_tag(self.model.heatmap_size, self.model.sigma)

    def geometries(self) -> list[Optional[str]]:
        """The geometry tags of the study: None (``model``'s own) first, then ``sweep``'s."""
        return [None] + [geometry_tag(g.heatmap_size, self._sigma(g)) for g in self.sweep]

    def _sigma(self, g: GeometryParams) -> float:
        return g.sigma if g.sigma is not None else self.model.sigma

    def at_geometry(self, tag: Optional[str]) -> 'Params':
        """These params with ``model`` moved to the swept geometry ``tag`` (None: unchanged)."""
        if tag is None:
            return self
        for g in self.sweep:
            if geometry_tag(g.heatmap_size, self._sigma(g)) == tag:
                return self.model_copy(update=dict(model=self._model_at(g)))
        raise ParamsError(f'geometry {tag!r} is not in params.yaml `sweep` '
                          f'(there: {", ".join(t for t in self.geometries() if t) or "none"})')

    def _model_at(self, g: GeometryParams) -> ModelParams:
        m = self.model
        ratio = [i / h for i, h in zip(m.input_size, m.heatmap_size)]
        size = [h * r for h, r in zip(g.heatmap_size, ratio)]
        if any(s != int(s) for s in size):
            raise ValueError(f'sweep: heatmap_size={list(g.heatmap_size)} gives a fractional '
                             f'input size {size} at model.input_size / heatmap_size = {ratio}')
        data = m.model_dump()
        data.update(input_size=tuple(int(s) for s in size), heatmap_size=g.heatmap_size,
                    sigma=self._sigma(g))
        return ModelParams.model_validate(data)

    @field_validator('seeds')
    @classmethod
    def _seeds(cls, v):
        if not v:
            raise ValueError('at least one seed is needed')
        dup = sorted({s for s in v if v.count(s) > 1})
        if dup:
            raise ValueError(f'duplicate seed(s) {dup}')
        if any(s < 0 for s in v):
            raise ValueError('seeds must be >= 0')
        return v

    @field_validator('methods')
    @classmethod
    def _method_names(cls, v):
        bad = [k for k in v if not k.replace('_', '').isalnum()]
        if bad:
            raise ValueError(f'method names must be letters, digits and _: {bad}')
        return v

    @model_validator(mode='after')
    def _sweep(self):
        tags = []
        for g in self.sweep:
            try:
                self._model_at(g)
            except ValidationError as err:
                msg = err.errors()[0]['msg'].removeprefix('Value error, ')
                raise ValueError(f'sweep: {msg}') from None
            tags.append(geometry_tag(g.heatmap_size, self._sigma(g)))
        base = geometry_tag(self.model.heatmap_size, self.model.sigma)
        if base in tags:
            raise ValueError(f'sweep: {base} is model\'s own geometry (heatmap_size, sigma): '
                             f'list only the other points')
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f'sweep: duplicate geometries {dup}')
        return self

    @model_validator(mode='after')
    def _active(self):
        if not self.active_methods:
            raise ValueError('active_methods: at least one method is needed')
        missing = [m for m in self.active_methods if m not in self.methods]
        if missing:
            raise ValueError(f'active_methods: {missing} not defined under methods '
                             f'(defined: {sorted(self.methods)})')
        if self.report.baseline not in self.active_methods:
            raise ValueError(f'report.baseline={self.report.baseline!r}: must be one of '
                             f'active_methods {list(self.active_methods)}')
        return self


def _format(err: ValidationError, path: Path) -> str:
    e = err.errors()[0]
    loc = '.'.join(str(p) for p in e['loc']) or '<top level>'
    msg = e['msg'].removeprefix('Value error, ')
    if e['type'] == 'extra_forbidden':
        return f'{path}: unknown key {loc!r}'
    if e['type'] == 'missing':
        return f'{path}: missing key {loc!r}'
    value = e.get('input')
    value_s = repr(value) if not isinstance(value, dict) else '{...}'
    if len(value_s) > 60:
        value_s = value_s[:57] + '...'
    return f'{path}: {loc} = {value_s}: {msg}'


#: The key of a profile's params file that names the file it overrides (relative to itself).
EXTENDS = 'extends'


def read_mapping(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ParamsError(f'{path}: cannot read ({exc.strerror})') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        raise ParamsError(f'{path}: invalid YAML{where}') from None
    if not isinstance(raw, dict):
        raise ParamsError(f'{path}: must be a mapping of sections, got {type(raw).__name__}')
    return raw


def merge(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``: mappings merge key by key (recursively), anything else
    (a list, a number, a string) is replaced whole."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_raw(path: Path, _seen: tuple = ()) -> dict:
    """The raw mapping of the params file ``path`` with its ``extends`` chain applied: a profile
    (``profiles/<name>/params.yaml``) lists only what differs from the file it extends."""
    path = path.resolve()
    if path in _seen:
        raise ParamsError(f'{path}: `{EXTENDS}` makes a cycle '
                          f'({" -> ".join(str(p) for p in _seen + (path,))})')
    raw = read_mapping(path)
    parent = raw.pop(EXTENDS, None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ParamsError(f'{path}: `{EXTENDS}` must be a path (relative to this file), '
                          f'got {parent!r}')
    base = path.parent / parent
    if not base.is_file():
        raise ParamsError(f'{path}: `{EXTENDS}: {parent}`: no such file {base}')
    return merge(resolve_raw(base, _seen + (path,)), raw)


def load_params(path: str | Path | None = None) -> Params:
    """Read and validate a params file (default: ``<workdir>/params.yaml``), its ``extends``
    chain applied; raise :class:`ParamsError` with a one-line message."""
    path = Path(path) if path is not None else workdir() / 'params.yaml'
    raw = resolve_raw(path)
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format(err, path)) from None
