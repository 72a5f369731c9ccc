"""Load the runs of a study into tidy pandas DataFrames: the report's only reader of ``runs/``.

One run (layout: :class:`bench.runs.RunPaths`) is, under ``<runs_root>``:
``eval/<method>/seed<k>/`` with ``train_status.json`` (the training's status, copied there by
the evaluate stage), ``metrics.json`` and ``keypoints.npz``;
``live/<method>/seed<k>/plots/metrics/**.tsv`` (DVCLive curves) and
``snapshots/<method>/seed<k>/epoch_XXX.npz`` (heatmaps). ``train/`` (the checkpoints) is never
read. :func:`load_study` reads every (method, seed) asked for:

- a run whose folder or status/metrics file is missing raises :class:`bench.errors.RunError`
  with one line naming the run (the study is incomplete: nothing is reported);
- a run whose status is not ``ok`` (diverged) is kept in :attr:`Study.runs` with its message and
  left out of every other table (the report lists it under "Failed runs");
- optional inputs (a learning-curve TSV, snapshots, ``keypoints_val.npz``, the
  classification heads' ``pixel_calibration.npz``) may be missing: their tables simply
  have no rows for that run, and the metrics computed from them are NaN.

Per-run metrics: the PCKs, AUC, EPE, mean OKS, AP (and pixel ECE) of ``metrics.json``; the
confidence metrics of :func:`confidence_metrics`; ``epochs_to_PCK<x>``, +inf for a run whose
validation PCK never reached x (censored, kept: see :func:`bench.report.stats.summarize`).
Every PCK is MMPose's (``keypoint_pck_accuracy``: per keypoint type the share of labelled
instances strictly closer than the threshold, then the mean over keypoint types).

Everything is returned sorted by (method order as given, seed, ...), so the report built from a
:class:`Study` does not depend on file-system listing order.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from bench.errors import RunError
from bench.report import metric_table, stats
from bench.runs import RunPaths

# Which metric comes from where, which way is better, what compares: one table
# (bench/report/metric_table.py); these are its views.
FILE_METRICS = metric_table.of_source('file')          # metrics.json, besides the PCKs
CONFIDENCE_METRICS = metric_table.of_source('confidence')  # computed here from keypoints*.npz
PIXEL_METRICS = metric_table.of_source('pixel')        # metrics.json, classification heads only
NOT_COMPARABLE = metric_table.NOT_COMPARABLE
HIT_THRESHOLD = metric_table.HIT_THRESHOLD
pck_metric = metric_table.pck_metric
reach_metric = metric_table.reach_metric
higher_is_better = metric_table.higher_is_better
# DVCLive name (path under live/plots/metrics without .tsv) of the validation PCK curve.
VAL_PCK = 'val/PCK'
_SNAPSHOT = re.compile(r'^epoch_(\d+)\.npz$')


def metric_names(pck_thresholds: Sequence[float], pck_reach: float) -> list[str]:
    """Every per-run metric of the report, in table order."""
    return metric_table.names(pck_thresholds, pck_reach)


def is_censored(metric: str) -> bool:
    """Whether a metric's per-run value can be censored (+inf: the run never got there)."""
    return metric.startswith('epochs_to')


def hits(dists: np.ndarray, threshold: float = HIT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, hit): (N, K) bool masks from (N, K) normalised distances (-1: unlabelled).
    A hit is what PCK@threshold counts: a labelled keypoint strictly closer than threshold."""
    d = np.asarray(dists, dtype=float)
    labelled = d >= 0
    return labelled, labelled & (d < threshold)


def keypoint_values(dists: np.ndarray, metric: str, curve_thresholds=None) -> np.ndarray | None:
    """(N, K) per-keypoint values whose joint-mean statistic (MMPose's: per keypoint type the
    mean over its labelled instances, then the mean over keypoint types) is ``metric``.

    ``PCK@t``: 1.0 for a hit (distance < t), else 0.0; ``AUC``: the share of
    ``curve_thresholds`` that the keypoint's distance is below (the joint-mean of it is the
    mean of the PCK curve, since the labelled set does not depend on the threshold). NaN where
    the keypoint is not labelled. ``None`` for a metric that is not such a statistic (EPE is
    pooled over keypoints in pixels; AP is a dataset-level score; mean OKS averages instances).
    """
    d = np.asarray(dists, dtype=float)
    labelled = d >= 0

    def below(t: float) -> np.ndarray:
        return (d < t).astype(float)

    if metric.startswith('PCK@'):
        try:
            t = float(metric[4:])
        except ValueError:
            return None
        return np.where(labelled, below(t), np.nan)
    if metric == 'AUC' and curve_thresholds is not None and len(curve_thresholds):
        share = np.mean([below(float(t)) for t in curve_thresholds], axis=0)
        return np.where(labelled, share, np.nan)
    return None


def calibrated(test_kp: dict, val_kp: dict | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(probabilities, hits) of the labelled test keypoints, the scores mapped to P(hit) by
    isotonic regression fitted on the *validation* split's (score, hit) pairs; None without a
    validation dump."""
    if val_kp is None:
        return None
    v_lab, v_hit = hits(val_kp['dists'])
    fit = stats.fit_isotonic(np.asarray(val_kp['scores'], float)[v_lab], v_hit[v_lab])
    if fit is None:
        return None
    t_lab, t_hit = hits(test_kp['dists'])
    return fit(np.asarray(test_kp['scores'], float)[t_lab]), t_hit[t_lab].astype(float)


def second_score_metrics(test_kp: dict, result: dict) -> dict[str, float]:
    """``AUROC_P`` (from the dump's ``probs``) and ``AP_P`` (metrics.json): AUROC and AP under
    a classification head's second score, the class probability (see
    :mod:`bench.report.scores`); NaN for a head with one score. Not in the metric tables."""
    out = {'AUROC_P': math.nan, 'AP_P': math.nan}
    if 'probs' in test_kp:
        lab, hit = hits(test_kp['dists'])
        out['AUROC_P'] = stats.auroc(np.asarray(test_kp['probs'], float)[lab], hit[lab])
    if result.get('AP_P') is not None:
        out['AP_P'] = float(result['AP_P'])
    return out


def confidence_metrics(test_kp: dict, val_kp: dict | None) -> dict[str, float]:
    """The confidence metrics of one run (labelled test keypoints, hit = PCK@0.1 hit):

    - ``AUROC``: does the keypoint score rank hits above misses (order only: comparable across
      formulations);
    - ``ECE_cal`` / ``Brier_cal``: ECE and Brier score of the scores recalibrated by isotonic
      regression fitted on the validation split (NaN without ``val_kp``);
    - ``ECE_raw``: ECE of the raw scores clipped to [0, 1]; heatmap maxima and peak
      probabilities are not on one scale, so it does not compare across formulations.
    """
    lab, hit = hits(test_kp['dists'])
    scores = np.asarray(test_kp['scores'], float)[lab]
    out = {'AUROC': stats.auroc(scores, hit[lab]),
           'ECE_raw': stats.calibration(scores, hit[lab].astype(float))['ece'],
           'ECE_cal': math.nan, 'Brier_cal': math.nan}
    cal = calibrated(test_kp, val_kp)
    if cal is not None:
        c = stats.calibration(*cal)
        out['ECE_cal'], out['Brier_cal'] = c['ece'], c['brier']
    return out


@dataclass
class Study:
    """Every run of a study, as tidy tables (see the module docstring)."""
    runs_root: Path
    methods: list[str]
    seeds: list[int]
    # method, seed, status, message, epochs, wall_s (training), eval_wall_s, test_instances: one
    # row per run asked for (failed runs included)
    runs: pd.DataFrame
    # method, seed, metric, value: successful runs only
    metrics: pd.DataFrame
    # method, seed, joint, pck: PCK@0.1 per keypoint (NaN: joint never labelled)
    per_joint: pd.DataFrame
    # method, seed, name ('val/PCK', 'train/bg_part', ...), epoch, value
    curves: pd.DataFrame
    # method, seed, threshold, pck: the test PCK-vs-threshold curve
    pck_curves: pd.DataFrame
    # (method, seed) -> arrays of eval/keypoints.npz (test split)
    keypoints: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)
    # (method, seed) -> arrays of eval/keypoints_val.npz (validation split), when recorded
    val_keypoints: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)
    # (method, seed) -> arrays of eval/pixel_calibration.npz (classification heads only)
    pixel_calibration: dict[tuple[str, int], dict[str, np.ndarray]] = field(
        default_factory=dict)
    # (method, seed) -> sorted epochs that have a snapshot
    snapshot_epochs: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    joints: list[str] = field(default_factory=list)
    geometry: str | None = None  # a `sweep` tag; None: the profile's own geometry
    # method, seed and bench.evaluation.model_cost.COST_FIELDS, from each run's eval/cost.json
    # (when recorded)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def ok_seeds(self, method: str) -> list[int]:
        r = self.runs
        return sorted(int(s) for s in r.loc[(r.method == method) & (r.status == 'ok'), 'seed'])

    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs.status != 'ok'].reset_index(drop=True)

    def snapshot_path(self, method: str, seed: int, epoch: int) -> Path:
        return (RunPaths(method, seed, self.runs_root, self.geometry).snapshots
                / f'epoch_{epoch:03d}.npz')

    def load_snapshot(self, method: str, seed: int, epoch: int) -> dict[str, np.ndarray]:
        with np.load(self.snapshot_path(method, seed, epoch)) as z:
            return {k: z[k] for k in z.files}

    def num_keypoints(self) -> int | None:
        for arrays in self.keypoints.values():
            return int(arrays['dists'].shape[1])
        return len(self.joints) or None


def _read_json(path: Path, run: str) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f'run {run}: {path} is not valid JSON ({exc.msg} at line {exc.lineno})') \
            from None


def _one_line(text) -> str:
    return ' '.join(str(text or '').split())


def read_tsv(path: Path) -> pd.DataFrame:
    """A DVCLive TSV as (epoch, value), one row per epoch (the last logged value wins)."""
    df = pd.read_csv(path, sep='\t')
    if df.empty or 'step' not in df.columns or len(df.columns) < 2:
        return pd.DataFrame({'epoch': pd.Series(dtype=int), 'value': pd.Series(dtype=float)})
    out = pd.DataFrame({'epoch': df['step'].astype(int),
                        'value': pd.to_numeric(df[df.columns[-1]], errors='coerce')})
    return (out.drop_duplicates('epoch', keep='last').sort_values('epoch')
            .reset_index(drop=True))


def _read_curves(live: Path) -> list[pd.DataFrame]:
    base = live / 'plots' / 'metrics'
    frames = []
    for tsv in sorted(base.glob('**/*.tsv')):
        name = tsv.relative_to(base).with_suffix('').as_posix()
        df = read_tsv(tsv)
        if len(df):
            frames.append(df.assign(name=name))
    return frames


def _eval_wall(folder: Path, run: str) -> float:
    """The evaluation's wall time (``timing.json`` of the run's eval folder); NaN when it was
    not recorded."""
    path = folder / 'timing.json'
    if not path.is_file():
        return math.nan
    wall = _read_json(path, run).get('wall_s')
    return float(wall) if isinstance(wall, (int, float)) else math.nan


def _optional_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an npz file, None when it does not exist."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _snapshot_epochs(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SNAPSHOT.match(p.name)))


def load_study(runs_root: str | Path, methods: Iterable[str], seeds: Iterable[int], *,
               pck_thresholds: Sequence[float] = (0.05, 0.1, 0.2), pck_reach: float = 0.5,
               joint_order: Sequence[str] | None = None,
               geometry: str | None = None) -> Study:
    """Read every run (``method``, ``seed``) under ``runs_root`` (see the module docstring).

    Args:
        runs_root: the ``runs/`` folder (holding ``eval/``, ``live/``, ``snapshots/``).
        methods: method names, in report order.
        seeds: seeds (sorted here).
        pck_thresholds: the ``PCK@<t>`` entries to read from metrics.json.
        pck_reach: validation PCK level of the ``epochs_to_PCK<x>`` metric.
        joint_order: keypoint names in dataset order (index 0 first); joints of metrics.json
            not in it follow in their file order. Default: the order of the first metrics.json.
        geometry: read the runs of this ``sweep`` geometry (default: the profile's own).

    Raises:
        RunError: a run's eval folder, its ``train_status.json``, ``metrics.json`` (for a run
            that trained) or ``keypoints.npz`` (for a run that succeeded) is missing.
    """
    runs_root = Path(runs_root)
    methods, seeds = list(methods), sorted(int(s) for s in seeds)
    names = [pck_metric(t) for t in pck_thresholds] + list(FILE_METRICS)
    all_names = metric_names(pck_thresholds, pck_reach)
    reach = reach_metric(pck_reach)
    run_rows, metric_rows, joint_rows, curve_frames, pck_frames = [], [], [], [], []
    keypoints, val_keypoints, pixel_cal, snapshots = {}, {}, {}, {}
    cost_rows = []
    joints: list[str] = list(joint_order or [])

    for method in methods:
        for seed in seeds:
            paths = RunPaths(method, seed, runs_root, geometry)
            run, folder = paths.name, paths.eval
            if not folder.is_dir():
                raise RunError(f'run {run}: folder {folder} is missing (not evaluated); run '
                               f'`dvc repro evaluate@{method}` first')
            status_file = folder / 'train_status.json'
            if not status_file.is_file():
                raise RunError(f'run {run}: {status_file} is missing (not trained, or evaluated '
                               f'by older code); run `dvc repro evaluate@{method}` first')
            status = _read_json(status_file, run)
            metrics_file = folder / 'metrics.json'
            if metrics_file.is_file():
                result = _read_json(metrics_file, run)
            elif status.get('status') != 'ok':
                result = status
            else:
                raise RunError(f'run {run}: {metrics_file} is missing (not evaluated); run '
                               f'`dvc repro evaluate@{method}` first')
            state = str(result.get('status', status.get('status', 'unknown')))
            message = result.get('message') or status.get('message') or ''
            wall = status.get('wall_s')
            run_rows.append(dict(method=method, seed=seed, status=state,
                                 message=_one_line(message) if state != 'ok' else '',
                                 epochs=status.get('epochs', math.nan),
                                 wall_s=float(wall) if wall is not None else math.nan,
                                 eval_wall_s=_eval_wall(folder, run),
                                 test_instances=math.nan))
            if state != 'ok':
                continue

            kp_file = folder / 'keypoints.npz'
            if not kp_file.is_file():
                raise RunError(f'run {run}: {kp_file} is missing; run `dvc repro '
                               f'evaluate@{method}` first')
            with np.load(kp_file) as z:
                kp = {k: z[k] for k in z.files}
            keypoints[(method, seed)] = kp
            run_rows[-1]['test_instances'] = int(kp['dists'].shape[0])

            if (folder / 'cost.json').is_file():
                cost = _read_json(folder / 'cost.json', run)
                cost_rows.append(dict(method=method, seed=seed, **{
                    k: float(v) if isinstance(v, (int, float)) else math.nan
                    for k, v in cost.items()}))
            val_kp = _optional_npz(folder / 'keypoints_val.npz')
            if val_kp is not None:
                val_keypoints[(method, seed)] = val_kp
            pixels = _optional_npz(folder / 'pixel_calibration.npz')
            if pixels is not None:
                pixel_cal[(method, seed)] = pixels

            values = {k: float(result[k]) if result.get(k) is not None else math.nan
                      for k in names}
            values.update(confidence_metrics(kp, val_kp))
            values.update(second_score_metrics(kp, result))
            values.update({k: float(result[k]) if result.get(k) is not None else math.nan
                           for k in PIXEL_METRICS})

            frames = _read_curves(paths.live)
            curve_frames += [f.assign(method=method, seed=seed) for f in frames]
            val = next((f for f in frames if f['name'].iat[0] == VAL_PCK), None)
            values[reach] = (stats.epochs_to_reach(val['epoch'], val['value'], pck_reach)
                             if val is not None else math.nan)
            metric_rows += [dict(method=method, seed=seed, metric=k, value=v)
                            for k, v in values.items()]

            for joint, v in (result.get('per_joint_pck') or {}).items():
                if joint not in joints:
                    joints.append(joint)
                v = float(v) if v is not None else math.nan
                joint_rows.append(dict(method=method, seed=seed, joint=joint,
                                       pck=v if v >= 0 else math.nan))

            if 'curve' in kp and 'curve_thresholds' in kp:
                pck_frames.append(pd.DataFrame(dict(
                    method=method, seed=seed,
                    threshold=np.asarray(kp['curve_thresholds'], float),
                    pck=np.asarray(kp['curve'], float))))
            snapshots[(method, seed)] = _snapshot_epochs(paths.snapshots)

    order = {m: i for i, m in enumerate(methods)}
    joint_idx = {j: i for i, j in enumerate(joints)}

    def tidy(df: pd.DataFrame, columns: list[str], keys: list[str]) -> pd.DataFrame:
        if df.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        df = df[columns].copy()
        sort = df.assign(_m=df['method'].map(order))
        if 'joint' in keys:
            sort['_j'] = sort['joint'].map(joint_idx)
        by = ['_m', *('_j' if k == 'joint' else k for k in keys)]
        return sort.sort_values(by, kind='stable').drop(columns=[c for c in ('_m', '_j')
                                                                 if c in sort]
                                                         ).reset_index(drop=True)

    metric_order = {m: i for i, m in enumerate(all_names)}
    metrics = pd.DataFrame(metric_rows)
    if not metrics.empty:
        metrics = metrics.assign(_k=metrics['metric'].map(metric_order))
        metrics = tidy(metrics, ['method', 'seed', 'metric', 'value', '_k'],
                       ['seed', '_k']).drop(columns='_k')
    else:
        metrics = tidy(metrics, ['method', 'seed', 'metric', 'value'], [])
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    pck_curves = pd.concat(pck_frames, ignore_index=True) if pck_frames else pd.DataFrame()
    return Study(
        runs_root=runs_root, methods=methods, seeds=seeds,
        runs=tidy(pd.DataFrame(run_rows), ['method', 'seed', 'status', 'message', 'epochs',
                                           'wall_s', 'eval_wall_s', 'test_instances'],
                   ['seed']),
        metrics=metrics,
        per_joint=tidy(pd.DataFrame(joint_rows), ['method', 'seed', 'joint', 'pck'],
                       ['joint', 'seed']),
        curves=tidy(curves, ['method', 'seed', 'name', 'epoch', 'value'],
                    ['name', 'seed', 'epoch']),
        pck_curves=tidy(pck_curves, ['method', 'seed', 'threshold', 'pck'],
                        ['seed', 'threshold']),
        keypoints=keypoints, val_keypoints=val_keypoints, pixel_calibration=pixel_cal,
        snapshot_epochs=snapshots, joints=joints, geometry=geometry,
        costs=pd.DataFrame(cost_rows))
