"""Stage ``floor``: the codec floor of every method, and what each method *is*, from its
resolved config.

Writes (no training; seconds):

- ``reports/codec_floor.csv``: one row per method defined in ``params.yaml`` (``active``
  says which ones the study trains): the test split's ground truth encoded by the method's
  codec, flipped and decoded at test time exactly as the trained model's outputs are
  (:mod:`bench.evaluation.codec_floor`), scored with the report's metrics: PCK at
  ``eval.pck_thresholds``, EPE
  (image pixels) and per-joint PCK@0.1. A head for which a floor means nothing (RLE: its
  target is the coordinate itself) or that has no floor rule gets a row with a ``note`` and
  NaN values. ``geometry`` names the geometry (tag, e.g. ``hm16s1.5``): every method at the
  profile's own, and the active methods again at each ``sweep`` geometry (the resolution
  axis needs the floor where it compares).
- ``reports/methods.csv``: per method, the head, codec, decoding, refinement, flip test and loss,
  each generated from the resolved MMEngine config (the report's method table).
- ``reports/imbalance.csv``: the background share of the classification targets of the
  *train* split (what the losses see; without augmentation) at the profile's heatmap size and
  at 64x64, and what OHEM would keep of it (:mod:`bench.evaluation.imbalance`).
"""
from __future__ import annotations

import json
import math
import time

import pandas as pd

from bench.config import build_config
from bench.data.layout import data_layout, joint_names, num_keypoints
from bench.formulations import for_head
from bench.params import Params, workdir
from bench.stages.common import write_json

FLOOR_FILE = 'codec_floor.csv'
METHODS_FILE = 'methods.csv'
IMBALANCE_FILE = 'imbalance.csv'
#: The second heatmap size of the imbalance table: where the paper's problem is real.
IMBALANCE_SIZE = (64, 64)


def describe_flip(test_cfg: dict, head_type: str) -> str:
    """The test-time augmentation of a head, in words, from its ``test_cfg`` and what its
    family flips (:attr:`bench.formulations.Formulation.flips`)."""
    if not test_cfg.get('flip_test'):
        return 'none'
    flips = for_head(head_type).flips
    if flips == 'coordinates':
        return ('flip test, coordinates, flipped x shifted 1 px'
                if test_cfg.get('shift_coords', True) else 'flip test, coordinates')
    if flips != 'heatmaps':
        return f'flip test, {flips}'
    return ('flip test, heatmap mode, flipped map shifted 1 px' if test_cfg.get('shift_heatmap')
            else 'flip test, heatmap mode')


def describe(params: Params, method: str, cfg) -> dict:
    """What ``method`` is (a row of ``methods.csv``), from its resolved config ``cfg`` (the
    one its floor is computed with: one build per method)."""
    head, codec = cfg.model.head, cfg.codec
    test_cfg = cfg.model.get('test_cfg', {})
    decoding, refine = for_head(head['type']).describe(codec)
    codec_args = {k: v for k, v in codec.items() if k not in ('type', 'input_size',
                                                               'heatmap_size')}
    flip = describe_flip(test_cfg, head['type'])
    return dict(method=method, label=params.methods[method].label or method,
                config=params.methods[method].config, head=head['type'],
                codec=f'{codec["type"]}({json.dumps(codec_args, sort_keys=True)})',
                decoding=decoding, refinement=refine, test_time=flip,
                loss=json.dumps(dict(head['loss']), sort_keys=True))


def _floor_key(cfg) -> str:
    return json.dumps([dict(cfg.codec), cfg.model.head['type'],
                       dict(cfg.model.get('test_cfg', {})),
                       cfg.test_dataloader.dataset.pipeline], sort_keys=True, default=str)


def run(params: Params) -> pd.DataFrame:
    from bench.evaluation.codec_floor import floor_metrics, perfect_predictions, split_samples

    start = time.perf_counter()
    names = joint_names(params.data.metainfo)
    thresholds = list(params.eval.pck_thresholds)
    rows, described, cache, pipelines, configs = [], [], {}, {}, {}
    # every method at the profile's own geometry; the active ones at each `sweep` geometry too
    cells = [(None, m) for m in sorted(params.methods,
                                       key=lambda m: (m not in params.active_methods, m))]
    cells += [(tag, m) for tag in params.geometries()[1:] for m in params.active_methods]
    for tag, method in cells:
        at = params.at_geometry(tag)
        cfg = build_config(at, method, seed=0)
        configs[tag, method] = cfg
        if tag is None:
            described.append(describe(params, method, cfg))
        row = dict(method=method, label=params.methods[method].label or method,
                   active=method in params.active_methods,
                   geometry=tag or params.base_geometry(), codec=cfg.codec['type'], note='')
        family = for_head(cfg.model.head['type'])
        if family.perfect_output is None:  # a row all the same, its values NaN
            row['note'] = family.no_floor
            rows.append(row)
            continue
        key = _floor_key(cfg)
        if key not in cache:
            # each method's own test pipeline: UDP's warp differs from the others'
            pipe = json.dumps(cfg.test_dataloader.dataset.pipeline, sort_keys=True, default=str)
            if pipe not in pipelines:
                pipelines[pipe] = split_samples(cfg)
            pp = perfect_predictions(cfg, pipelines[pipe])
            cache[key] = floor_metrics(pp, thresholds, joint_names=names)
        row.update(cache[key])
        rows.append(row)
    floor = pd.DataFrame(rows)
    out = workdir() / 'reports'
    out.mkdir(parents=True, exist_ok=True)
    floor.to_csv(out / FLOOR_FILE, index=False, float_format='%.6g', lineterminator='\n')
    pd.DataFrame(described).to_csv(out / METHODS_FILE, index=False, lineterminator='\n')
    _write_imbalance(params, configs[None, params.active_methods[0]], out / IMBALANCE_FILE)
    write_json(workdir() / 'data' / 'floor_timing.json',
               dict(stage='floor', wall_s=round(time.perf_counter() - start, 1)))
    k = num_keypoints(params.data.metainfo)
    first = f'PCK@{thresholds[0]:g}'  # the schema guarantees at least one threshold
    for r in rows:
        if not math.isnan(r.get(first, math.nan)):
            print(f'floor {r["method"]:>16} {r["geometry"]:>9}: {first} {r[first]:.4f}  '
                  f'EPE {r["EPE"]:.2f} px  (K={k})')
    return floor


def _write_imbalance(params: Params, cfg, path) -> None:
    """``imbalance.csv`` from the train split, read through ``cfg``'s (the first active
    method's) test pipeline."""
    from bench.evaluation.codec_floor import split_samples
    from bench.evaluation.imbalance import imbalance_rows
    train_ann = data_layout(params)['ann_files']['train']
    samples = split_samples(cfg, train_ann)
    sizes = [tuple(params.model.heatmap_size)]
    if tuple(IMBALANCE_SIZE) not in sizes:
        sizes.append(IMBALANCE_SIZE)
    import inspect

    from bench.models import PixelCrossEntropyLoss
    default = inspect.signature(PixelCrossEntropyLoss).parameters['bg_threshold'].default
    thresholds = [float(spec.loss['bg_threshold']) for spec in params.methods.values()
                  if spec.loss and 'bg_threshold' in spec.loss] or [default]
    rows = imbalance_rows(samples, params.model.input_size, sizes, params.model.sigma,
                          bg_threshold=thresholds[0])
    pd.DataFrame(rows).to_csv(path, index=False, float_format='%.4g', lineterminator='\n')
