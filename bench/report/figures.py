"""The report's figures: one function per PNG, each drawing from a
:class:`~bench.report.collect.Study` and/or the report's DataFrames. Every figure colours a
method the same way (:func:`palette`, keyed by the method order of ``params.yaml``) and names
it by its label.

A figure whose inputs are missing (no snapshots, no learning curves, a single method) is still
written, with a one-line note in place of the plot, so the report's file list never changes.
"""
from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from scipy import ndimage  # noqa: E402

from bench.report import metric_table, stats  # noqa: E402
from bench.report.collect import (HIT_THRESHOLD, VAL_PCK, Study, calibrated,  # noqa: E402
                                  higher_is_better, hits)

DPI = 110
MAP_CMAP = 'inferno'
BG_CMAP = 'viridis'
# Figures of the report, in README order (file names under figures/).
FIGURES = ('heatmaps.png', 'learning_curves.png', 'metric_comparison.png', 'pck_curves.png',
           'per_joint_diff.png', 'calibration.png', 'pixel_calibration.png', 'oks.png',
           'sharpness.png')

sns.set_theme(context='notebook', style='whitegrid')


# ----------------------------------------------------------------------------------- helpers

def palette(methods: Sequence[str]) -> dict[str, tuple]:
    """One colour per method, fixed by its position in ``methods`` (params.yaml order)."""
    colors = sns.color_palette('colorblind' if len(methods) <= 10 else 'husl', len(methods))
    return {m: tuple(c) for m, c in zip(methods, colors)}


def display_names(methods: Sequence[str], labels: Mapping[str, str]) -> dict[str, str]:
    """method → its label, made unique (a duplicate label gets the method name appended)."""
    names = {m: labels.get(m) or m for m in methods}
    counts = pd.Series(list(names.values())).value_counts()
    return {m: (f'{n} [{m}]' if counts[n] > 1 else n) for m, n in names.items()}


def _wrap(text: str, width: int = 20) -> str:
    return '\n'.join(textwrap.wrap(text, width)) or text


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches='tight', metadata={'Software': None})
    plt.close(fig)
    return path


def placeholder(path: Path, title: str, note: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis('off')
    ax.set_title(title, fontsize=13, fontweight='bold')
    ax.text(0.5, 0.45, note, ha='center', va='center', fontsize=11, wrap=True,
            transform=ax.transAxes)
    return save(fig, path)


def _present(study: Study, methods: Sequence[str]) -> list[str]:
    return [m for m in methods if study.ok_seeds(m)]


def _named(df: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    return df.assign(Method=df['method'].map(names))


def _max_seeds(study: Study, methods: Sequence[str]) -> int:
    return max((len(study.ok_seeds(m)) for m in methods), default=0)


def _t_band(confidence: float):
    """A seaborn ``errorbar`` callable: the Student-t CI of the mean over seeds (the same
    interval as the tables; seaborn's bootstrap would be far too narrow with 3 seeds)."""
    def band(values) -> tuple[float, float]:
        return stats.t_interval(values, confidence)
    return band


def _seed_note(study: Study, methods: Sequence[str]) -> str:
    ns = sorted({len(study.ok_seeds(m)) for m in methods})
    n = f'{ns[0]}' if len(ns) == 1 else f'{ns[0]}–{ns[-1]}'
    return f'{n} seed{"s" if ns[-1] != 1 else ""} per method'


# ---------------------------------------------------------------------------------- heatmaps

def _upsample(hm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (H, W) heatmap bilinearly resampled onto the (h, w) input-image pixel grid, with
    MMPose's convention that heatmap pixel j sits at input pixel j * stride."""
    h, w = shape
    H, W = hm.shape
    ys = np.arange(h) * (H / h)
    xs = np.arange(w) * (W / w)
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    return ndimage.map_coordinates(hm.astype(float), [yy, xx], order=1, mode='nearest')


def _overlay(ax, image: np.ndarray, value: np.ndarray, cmap: str) -> None:
    """The image with ``value`` (in [0, 1]) on top, more opaque where it is higher."""
    ax.imshow(image, interpolation='nearest')
    rgba = plt.get_cmap(cmap)(np.clip(value, 0, 1))
    rgba[..., 3] = 0.9 * np.clip(value, 0, 1) ** 0.6
    ax.imshow(rgba, interpolation='nearest')


def _mark(ax, points: np.ndarray, shape, **style) -> None:
    h, w = shape
    p = np.asarray(points, float)
    ok = np.isfinite(p).all(1) & (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    ax.scatter(p[ok, 0], p[ok, 1], **style)


def _pick_seed(study: Study, methods: Sequence[str]) -> tuple[int | None, list[str]]:
    best, best_have = None, []
    for seed in study.seeds:
        have = [m for m in methods if study.snapshot_epochs.get((m, seed))]
        if len(have) == len(methods):
            return seed, have
        if len(have) > len(best_have):
            best, best_have = seed, have
    return best, best_have


def keypoint_map(heatmaps: np.ndarray, is_cls: bool, scaled: bool = False) -> np.ndarray:
    """What the heatmap figure draws for one instance: the maximum over the K keypoint maps
    (H, W) of ``heatmaps`` (K, H, W), or (K+1, H, W) probabilities for a classification head.

    A classification map is drawn as the Gaussians G_j its decoder recovers from the
    probabilities (:func:`bench.codecs.pixel_class_label.recover_gaussians`), not as the
    probabilities P_j: where keypoints crowd, neighbours share a pixel's mass, so a perfect P_j
    peaks well below 1 while G_j, like a regression heatmap, peaks at the Gaussian's value.
    A perfect prediction of either formulation then draws at the same peak value. ``scaled``:
    maps that are distributions over the pixels (DSNT) are divided by their maximum."""
    hm = np.asarray(heatmaps, float)
    if is_cls:
        from bench.codecs.pixel_class_label import recover_gaussians
        kp = recover_gaussians(hm[None])[0]
    else:
        kp = hm
    if scaled:
        kp = kp / np.maximum(kp.max(axis=(1, 2), keepdims=True), 1e-12)
    return kp.max(axis=0)


def heatmaps(study: Study, methods: Sequence[str], labels: Mapping[str, str], path: Path, *,
             n_images: int = 3, mid_epoch: int = 15) -> Path:
    """THE figure: predicted keypoint maps of each method on the same validation images.

    Rows: image × {the last snapshot epoch ≤ ``mid_epoch`` before the final one, the final
    epoch}; columns: the input with its ground truth, then per method the keypoint maps'
    maximum (:func:`keypoint_map`: for a classification method the recovered Gaussians;
    upsampled, overlaid on the input, predicted keypoints as crosses), plus for a
    classification method (K+1 channels) its background channel. First seed that every method
    has snapshots for.
    """
    names = display_names(methods, labels)
    colors = palette(methods)
    present = _present(study, methods)
    seed, have = _pick_seed(study, present)
    title = 'Predicted heatmaps (validation images)'
    # like for like: a classification column shows the Gaussians its decoder reads, recovered
    # from the K+1 probabilities, on the regression heatmaps' scale (keypoint_map)
    if seed is None:
        return placeholder(path, title, 'No heatmap snapshots were found in any run.')
    common = set.intersection(*(set(study.snapshot_epochs[(m, seed)]) for m in have))
    if not common:
        return placeholder(path, title, f'The methods share no snapshot epoch (seed {seed}).')
    final = max(common)
    earlier = [e for e in common if e <= mid_epoch and e < final]
    epochs = ([max(earlier)] if earlier else []) + [final]
    snaps = {(m, e): study.load_snapshot(m, seed, e) for m in have for e in epochs}
    first = snaps[(have[0], final)]
    n_img = min(n_images, len(first['images']))
    k = int(first['gt'].shape[1])
    is_cls = {m: snaps[(m, final)]['heatmaps'].shape[1] == k + 1 for m in have}
    # maps that are distributions over the pixels (DSNT's soft-maxed maps sum to 1; a
    # Gaussian's peak is then ~1 / (2 pi sigma^2)) are shown divided by their maximum
    scaled = {m: not is_cls[m] and bool(np.allclose(
        np.asarray(snaps[(m, final)]['heatmaps'], float).sum(axis=(-2, -1)), 1.0, atol=1e-3))
        for m in have}

    columns = [('input', None)]
    for m in have:
        columns.append(('map', m))
        if is_cls[m]:
            columns.append(('bg', m))
    rows = [(i, e) for i in range(n_img) for e in epochs]
    size = 2.0
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(size * len(columns) + 1.4, size * len(rows) + 1.3))
    for r, (i, e) in enumerate(rows):
        for c, (kind, m) in enumerate(columns):
            ax = axes[r, c]
            snap = snaps[(m or have[0], e)]
            image = snap['images'][i]
            shape = image.shape[:2]
            if kind == 'input':
                ax.imshow(image, interpolation='nearest')
                gt = np.asarray(snap['gt'][i], float)
                if 'gt_visible' in snap:                 # unlabelled keypoints are (0, 0)
                    gt = np.where(np.asarray(snap['gt_visible'][i], bool)[:, None], gt, np.nan)
                _mark(ax, gt, shape, s=22, c='lime', edgecolors='black',
                      linewidths=0.6, label='ground truth')
            else:
                hm = np.asarray(snap['heatmaps'][i], float)
                if kind == 'map':
                    _overlay(ax, image, _upsample(keypoint_map(hm, is_cls[m], scaled[m]),
                                                  shape), MAP_CMAP)
                else:
                    ax.imshow(np.clip(_upsample(hm[0], shape), 0, 1), cmap=BG_CMAP, vmin=0,
                              vmax=1, interpolation='nearest')
                _mark(ax, snap['keypoints'][i], shape, s=26, marker='x', c='cyan',
                      linewidths=1.2, label='prediction')
            ax.set_xlim(-0.5, shape[1] - 0.5)
            ax.set_ylim(shape[0] - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c == 0:
                ax.set_ylabel(f'img {i}, epoch {e}', fontsize=10)
            if r == 0:
                if kind == 'input':
                    ax.set_title('input + ground truth', fontsize=10)
                else:
                    text = names[m] if kind == 'map' else f'{names[m]}: background p'
                    if kind == 'map' and scaled[m]:
                        text += ' (maps ÷ max)'
                    ax.set_title(_wrap(text, 18), fontsize=10, color=colors[m],
                                 fontweight='bold')
    height = size * len(rows) + 1.3
    fig.subplots_adjust(left=0.05, right=0.9, bottom=0.02, top=1 - 1.25 / height,
                        wspace=0.06, hspace=0.1)
    has_bg = any(is_cls.values())
    top, bottom = 1 - 1.25 / height, 0.02
    span = (top - bottom) / (2 if has_bg else 1)
    cax = fig.add_axes([0.915, top - span + 0.03, 0.012, span - 0.06])
    fig.colorbar(ScalarMappable(Normalize(0, 1), MAP_CMAP), cax=cax,
                 label='keypoint map, max over K (classification: recovered Gaussians)')
    if has_bg:
        cax = fig.add_axes([0.915, bottom + 0.03, 0.012, span - 0.06])
        fig.colorbar(ScalarMappable(Normalize(0, 1), BG_CMAP), cax=cax,
                     label='background probability')
    missing = [names[m] for m in present if m not in have]
    sub = f'seed {seed}; crosses: predicted keypoints, green dots: ground truth'
    if missing:  # e.g. RLE: a coordinate-regression head outputs no maps
        sub += f'; no snapshot for {", ".join(missing)}'
    fig.suptitle(f'{title}\n{sub}', fontsize=12, y=1 - 0.15 / height, va='top')
    return save(fig, path)


# --------------------------------------------------------------------------- learning curves

def learning_curves(study: Study, methods: Sequence[str], labels: Mapping[str, str],
                    path: Path, *, pck_reach: float | None = None,
                    confidence: float = 0.95) -> Path:
    """Validation PCK and EPE per epoch (and the classification loss parts bg/fg when logged):
    mean over seeds with a Student-t band."""
    names = display_names(methods, labels)
    present = _present(study, methods)
    colors = {names[m]: c for m, c in palette(methods).items()}
    cv = study.curves
    ok = pd.MultiIndex.from_tuples([(m, s) for m in present for s in study.ok_seeds(m)])
    if not cv.empty:
        cv = cv[pd.MultiIndex.from_frame(cv[['method', 'seed']]).isin(ok)]
    panels = [(VAL_PCK, 'Validation PCK@0.1 ↑', 'PCK@0.1'),
              ('val/EPE', 'Validation EPE ↓', 'EPE (pixels)')]
    panels = [p for p in panels if not cv.empty and (cv.name == p[0]).any()]
    parts = cv[cv.name.isin(['train/bg_part', 'train/fg_part'])] if not cv.empty else cv
    n = len(panels) + (not parts.empty)
    title = 'Learning curves'
    if n == 0:
        return placeholder(path, title, 'No learning curves (DVCLive TSVs) were found.')
    fig, axes = plt.subplots(1, n, figsize=(5.6 * n, 4.4), squeeze=False)
    err = _t_band(confidence)
    for ax, (name, ptitle, ylabel) in zip(axes[0], panels):
        df = _named(cv[cv.name == name], names)
        sns.lineplot(df, x='epoch', y='value', hue='Method',
                     hue_order=[names[m] for m in present if (df.method == m).any()],
                     palette=colors, errorbar=err, marker='o', markersize=4, ax=ax)
        if name == VAL_PCK and pck_reach is not None:
            ax.axhline(pck_reach, ls=':', c='grey', lw=1)
            ax.annotate(f'PCK {pck_reach:g} ("epochs to reach")', (0.98, pck_reach),
                        xycoords=('axes fraction', 'data'), fontsize=8, color='grey',
                        va='bottom', ha='right')
        ax.set(title=ptitle, xlabel='epoch', ylabel=ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if not parts.empty:
        ax = axes[0, -1]
        df = _named(parts, names).assign(
            part=parts['name'].map({'train/bg_part': 'background', 'train/fg_part': 'keypoint'}))
        sns.lineplot(df, x='epoch', y='value', hue='Method',
                     hue_order=[names[m] for m in present if (df.method == m).any()],
                     palette=colors, style='part', style_order=['background', 'keypoint'],
                     errorbar=err, ax=ax)
        if (df['value'] > 0).all():
            ax.set_yscale('log')
        ax.set(title='Classification loss parts (train)', xlabel='epoch',
               ylabel='loss part (mean per epoch)')
        ax.xaxis.get_major_locator().set_params(integer=True)
    # one legend of methods for the figure (below the panels); the loss-part panel keeps a
    # legend of its line styles only
    handles, names_seen = [], []
    for ax in axes[0]:
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if lb in colors and lb not in names_seen:
                handles.append(h)
                names_seen.append(lb)
        leg = ax.get_legend()
        if leg is not None:
            leg.remove()
    if not parts.empty:
        ax = axes[0, -1]
        style = [(h, lb) for h, lb in zip(*ax.get_legend_handles_labels())
                 if lb in ('background', 'keypoint')]
        ax.legend([h for h, _ in style], [lb for _, lb in style], fontsize=9, loc='upper right')
    order = [names[m] for m in present]
    handles = [handles[names_seen.index(n)] for n in order if n in names_seen]
    fig.legend(handles, [n for n in order if n in names_seen], loc='lower center',
               ncol=min(len(handles), 4), bbox_to_anchor=(0.5, -0.02), frameon=False,
               fontsize=10)
    band = (f'band = {confidence:.0%} Student-t CI' if _max_seeds(study, present) > 1
            else 'no band with 1 seed')
    fig.suptitle(f'{title}: mean over seeds, {band} ({_seed_note(study, present)})',
                 fontsize=12)
    fig.tight_layout(rect=(0, 0.07 * math.ceil(len(handles) / 4), 1, 1))
    return save(fig, path)


# ------------------------------------------------------------------------- metric comparison

def metric_comparison(summary: pd.DataFrame, per_run: pd.DataFrame, methods: Sequence[str],
                      labels: Mapping[str, str], path: Path, *,
                      metrics: Sequence[str] | None = None,
                      confidence: float = 0.95) -> Path:
    """Per metric: each method's mean with its CI (from ``summary``) and its seeds as dots;
    ``metrics`` default: :func:`bench.report.metric_table.figure_names` of PCK@0.1."""
    if metrics is None:
        metrics = metric_table.figure_names(metric_table.pck_metric(0.1))
    names = display_names(methods, labels)
    colors = palette(methods)
    metrics = [m for m in metrics if (summary.metric == m).any()]
    if not metrics or summary['n'].max() == 0:
        return placeholder(path, 'Test metrics per method', 'No successful runs.')
    fig, axes = plt.subplots(1, len(metrics), figsize=(0.9 * len(methods) * len(metrics) + 3,
                                                        4.6), squeeze=False)
    s = summary.set_index(['method', 'metric'])
    for ax, metric in zip(axes[0], metrics):
        for x, m in enumerate(methods):
            r = s.loc[(m, metric)]
            vals = per_run[(per_run.method == m) & (per_run.metric == metric)]['value']
            vals = vals[np.isfinite(vals)].to_numpy()
            if len(vals):
                jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else [0.0]
                ax.scatter(x + np.asarray(jitter) + 0.22, vals, s=14, color=colors[m],
                           alpha=0.55, edgecolors='none', zorder=2)
            if not np.isfinite(r['mean']):
                ax.text(x, 0.5, 'no successful run', rotation=90, ha='center', va='center',
                        fontsize=8, color='grey', transform=ax.get_xaxis_transform())
                continue
            lo, hi = r['ci_low'], r['ci_high']
            if np.isfinite(lo) and np.isfinite(hi):
                ax.errorbar(x, r['mean'], yerr=[[r['mean'] - lo], [hi - r['mean']]], fmt='D',
                            color=colors[m], capsize=5, markersize=7, lw=1.8, zorder=3)
            else:
                ax.plot(x, r['mean'], 'D', color=colors[m], markersize=7, zorder=3)
        ax.set_xticks(range(len(methods)), [_wrap(names[m], 14) for m in methods],
                      rotation=35, ha='right', fontsize=9)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(f'{metric} ({"higher" if higher_is_better(metric) else "lower"} is better)',
                     fontsize=11)
        ax.set_ylabel(metric)
    ci = (f'with {confidence:.0%} Student-t CI over seeds' if summary['n'].max() > 1
          else '(no CI with 1 seed)')
    fig.suptitle(f'Test metrics: mean (diamond) {ci}; dots = individual seeds', fontsize=12)
    fig.tight_layout()
    return save(fig, path)


# --------------------------------------------------------------------------------- PCK curve

def pck_curves(study: Study, methods: Sequence[str], labels: Mapping[str, str], path: Path, *,
               thresholds: Sequence[float] = (), confidence: float = 0.95) -> Path:
    """Test PCK as a function of the distance threshold (the curve whose mean is the AUC)."""
    names = display_names(methods, labels)
    present = _present(study, methods)
    colors = {names[m]: c for m, c in palette(methods).items()}
    title = 'PCK vs threshold (test set)'
    if study.pck_curves.empty:
        return placeholder(path, title, 'No PCK curves (eval/keypoints.npz) were found.')
    df = _named(study.pck_curves, names)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    sns.lineplot(df, x='threshold', y='pck', hue='Method',
                 hue_order=[names[m] for m in present], palette=colors,
                 errorbar=_t_band(confidence), ax=ax)
    for t in thresholds:
        ax.axvline(t, ls=':', c='grey', lw=1)
        ax.annotate(f'{t:g}', (t, 0.02), xycoords=('data', 'axes fraction'), fontsize=8,
                    color='grey', ha='left')
    ax.set(xlabel='threshold t: keypoint distance / bbox size',
           ylabel='PCK@t (MMPose: mean over keypoint types\nof the share closer than t)',
           title=f'{title}: mean over seeds, '
                 + (f'band = {confidence:.0%} Student-t CI' if _max_seeds(study, present) > 1
                    else 'no band with 1 seed') + f' ({_seed_note(study, present)})',
           ylim=(0, 1.02))
    ax.legend(title=None, fontsize=9, loc='lower right')
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------------- per joint

def per_joint_annotations(per_joint: pd.DataFrame, variants: Sequence[str],
                          joints: Sequence[str]) -> np.ndarray:
    """The per-keypoint figure's cell texts (variants × joints): ``+0.01`` then ``±0.02``
    (half the paired CI), starred when the CI excludes 0, from the per-joint table's
    ``diff_vs_baseline`` and ``diff_ci_*`` columns."""
    idx = per_joint.set_index(['method', 'joint'])
    out = np.full((len(variants), len(joints)), '', dtype=object)
    for a, m in enumerate(variants):
        for b, j in enumerate(joints):
            if (m, j) not in idx.index:
                continue
            r = idx.loc[(m, j)]
            d, lo, hi = r['diff_vs_baseline'], r.get('diff_ci_low'), r.get('diff_ci_high')
            if not np.isfinite(d):
                continue
            text = f'{d:+.2f}'
            if lo is not None and np.isfinite(lo) and np.isfinite(hi):
                text += ('*' if lo > 0 or hi < 0 else '') + f'\n±{(hi - lo) / 2:.2f}'
            out[a, b] = text
    return out


def per_joint_diff(per_joint: pd.DataFrame, methods: Sequence[str], baseline: str,
                   labels: Mapping[str, str], path: Path) -> Path:
    """Heatmap variant × keypoint of the PCK@0.1 difference to the baseline (means over seeds)."""
    names = display_names(methods, labels)
    title = f'Per-keypoint PCK@{HIT_THRESHOLD:g}: difference to {names[baseline]}'
    variants = [m for m in methods if m != baseline and (per_joint.method == m).any()]
    if per_joint.empty or not variants or not (per_joint.method == baseline).any():
        return placeholder(path, title, 'Needs results of the baseline and of at least one '
                                         'other method.')
    joints = list(dict.fromkeys(per_joint['joint']))
    grid = (per_joint[per_joint.method.isin(variants)]
            .pivot(index='method', columns='joint', values='diff_vs_baseline')
            .reindex(index=variants, columns=joints))
    grid.index = [names[m] for m in variants]
    vmax = float(np.nanmax(np.abs(grid.to_numpy()))) if np.isfinite(grid.to_numpy()).any() else 0
    vmax = max(vmax, 0.01)
    annot = per_joint_annotations(per_joint, variants, joints)
    fig, ax = plt.subplots(figsize=(0.72 * len(joints) + 3.5, 0.72 * len(variants) + 2.2))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', PendingDeprecationWarning)   # seaborn's cmap.set_bad
        sns.heatmap(grid, cmap='RdBu', center=0, vmin=-vmax, vmax=vmax, annot=annot, fmt='',
                    annot_kws={'fontsize': 7}, linewidths=0.5, linecolor='white',
                    ax=ax, cbar_kws={'label': f'Δ PCK@{HIT_THRESHOLD:g} '
                                              '(blue: better than baseline)'})
    ax.set(xlabel='keypoint', ylabel='',
           title=f'{title}\n(mean over seeds ± half the paired 95% CI; * the CI excludes 0)')
    ax.tick_params(axis='x', rotation=60)
    ax.tick_params(axis='y', rotation=0)
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------------ calibration

def _pooled(study: Study, method: str) -> dict[str, np.ndarray] | None:
    """A method's labelled test keypoints of all its seeds: raw ``scores``, ``hits`` (PCK@0.1
    hits) and ``calibrated`` scores (each run's own isotonic map fitted on its validation
    split; absent when a run has no validation dump)."""
    raw, hit, cal = [], [], []
    for seed in study.ok_seeds(method):
        kp = study.keypoints.get((method, seed))
        if kp is None:
            continue
        lab, h = hits(kp['dists'], HIT_THRESHOLD)
        raw.append(np.asarray(kp['scores'], float)[lab])
        hit.append(h[lab].astype(float))
        c = calibrated(kp, study.val_keypoints.get((method, seed)))
        cal.append(c[0] if c is not None else None)
    if not raw:
        return None
    out = {'scores': np.concatenate(raw), 'hits': np.concatenate(hit)}
    if all(c is not None for c in cal):
        out['calibrated'] = np.concatenate(cal)
    return out


def _reliability(ax, b: pd.DataFrame, color, label: str) -> None:
    ax.plot(b['mean_score'], b['accuracy'], marker='o', color=color, lw=1.8, label=label)


def calibration(study: Study, methods: Sequence[str], labels: Mapping[str, str],
                path: Path, *, n_bins: int = 10) -> Path:
    """Confidence of the keypoint scores against a PCK@0.1 hit, in three panels: the ROC curve
    (AUROC: ranking, comparable across formulations), the reliability diagram after isotonic
    recalibration fitted on each run's validation split (comparable), and the raw reliability
    diagram (scores clipped to [0, 1]; not comparable: heatmap maxima are not probabilities)."""
    names = display_names(methods, labels)
    colors = palette(methods)
    pooled = {m: c for m in methods if (c := _pooled(study, m)) is not None}
    title = 'Confidence of keypoint scores'
    if not pooled:
        return placeholder(path, title, 'No evaluated runs.')
    fig, (ax_roc, ax_cal, ax_raw) = plt.subplots(1, 3, figsize=(17, 5.6))
    ax_roc.plot([0, 1], [0, 1], ls='--', c='grey', lw=1, label='chance (AUROC 0.5)')
    for ax in (ax_cal, ax_raw):
        ax.plot([0, 1], [0, 1], ls='--', c='grey', lw=1, label='perfect calibration')
    for m, d in pooled.items():
        fpr, tpr = stats.roc_curve(d['scores'], d['hits'])
        if fpr.size:
            ax_roc.plot(fpr, tpr, color=colors[m], lw=1.8,
                        label=f'{names[m]} (AUROC {stats.auroc(d["scores"], d["hits"]):.3f})')
        if 'calibrated' in d:
            c = stats.calibration(d['calibrated'], d['hits'], n_bins=n_bins)
            _reliability(ax_cal, c['bins'], colors[m],
                         f'{names[m]} (ECE {c["ece"]:.3f}, Brier {c["brier"]:.3f})')
        r = stats.calibration(d['scores'], d['hits'], n_bins=n_bins)
        _reliability(ax_raw, r['bins'], colors[m], f'{names[m]} (raw ECE {r["ece"]:.3f})')
    hit = f'hit: distance < {HIT_THRESHOLD:g} × bbox size'
    ax_roc.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='false-positive rate (misses above the cut)',
               ylabel='true-positive rate (hits above the cut)',
               title=f'ROC of the score as a hit detector\n({hit})')
    ax_cal.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='recalibrated score, bin mean',
               ylabel='hit frequency',
               title='After isotonic recalibration fitted\non the validation split')
    if not any('calibrated' in d for d in pooled.values()):
        ax_cal.text(0.5, 0.5, 'no validation dumps\n(eval/keypoints_val.npz)', ha='center',
                    va='center', fontsize=10, color='grey', transform=ax_cal.transAxes)
    ax_raw.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='raw score clipped to [0, 1], bin mean',
               ylabel='hit frequency',
               title='Raw scores (not comparable across\nformulations: see the report)')
    for ax in (ax_roc, ax_cal, ax_raw):
        ax.legend(fontsize=8.5, loc='upper left', bbox_to_anchor=(0.0, -0.16), frameon=False)
    fig.suptitle(f'{title} (labelled test keypoints of all seeds pooled; each run '
                 'recalibrated with its own validation split)\nregression scores are heatmap '
                 'maxima, classification scores are softmax peak probabilities', fontsize=11)
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------ pixel calibration

def pixel_calibration(study: Study, methods: Sequence[str], labels: Mapping[str, str],
                      path: Path) -> Path:
    """Per-pixel reliability of the classification heads' K+1 softmax against their soft
    targets on the test split (every pixel × class of every test image, all seeds pooled):
    mean target probability vs mean predicted probability per probability bin, for the
    background channel and the keypoint channels, and the number of entries per bin."""
    from bench.evaluation.pixel_calibration import GROUPS, by_group, pixel_ece
    names = display_names(methods, labels)
    colors = palette(methods)
    title = 'Per-pixel calibration of the K+1 softmax (test split)'
    pooled = {}
    for m in methods:
        runs = [study.pixel_calibration[(m, s)] for s in study.ok_seeds(m)
                if (m, s) in study.pixel_calibration]
        if runs:
            pooled[m] = {k: sum(r[k] for r in runs) for k in ('count', 'sum_pred', 'sum_target')}
            pooled[m]['edges'] = runs[0]['edges']
    if not pooled:
        return placeholder(path, title, 'No classification method (or no '
                                         'eval/pixel_calibration.npz) in this study.')
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(13, 5.6), gridspec_kw={'width_ratios': [1.1, 1]})
    ax.plot([0, 1], [0, 1], ls='--', c='grey', lw=1, label='honest probabilities')
    styles = {'background': dict(ls='-', marker='o'), 'keypoints': dict(ls=':', marker='s')}
    for m, h in pooled.items():
        edges = h['edges']
        mid = (edges[:-1] + edges[1:]) / 2
        ece = pixel_ece(h['count'], h['sum_pred'], h['sum_target'])    # class-wise
        h = by_group(h)
        for g, group in enumerate(GROUPS):
            c = h['count'][g].astype(float)
            ok = c > 0
            ax.plot(h['sum_pred'][g][ok] / c[ok], h['sum_target'][g][ok] / c[ok],
                    color=colors[m], lw=1.6, markersize=4, **styles[group],
                    label=f'{names[m]}, {group}' + (f' (class-wise ECE {ece:.4f})' if g == 0
                                                     else ''))
            axh.step(mid, np.where(ok, c, np.nan), where='mid', color=colors[m],
                     ls=styles[group]['ls'], label=f'{names[m]}, {group}')
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='predicted probability p (bin mean)',
           ylabel='soft-target probability (bin mean)',
           title='Reliability: p against the codec\'s soft target')
    ax.legend(fontsize=8.5, loc='upper left', bbox_to_anchor=(0.0, -0.14), frameon=False)
    axh.set_yscale('log')
    axh.set(xlim=(0, 1), xlabel='predicted probability p',
            ylabel='pixel × class entries per bin (log)', title='Where the entries are')
    fig.suptitle(f'{title}: every pixel and class of every test image, seeds pooled\n'
                 'one forward pass without flip test; class-wise ECE = Σ_classes Σ_bins '
                 '|Σ p − Σ target| / entries',
                 fontsize=11)
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------------------- OKS

def oks(study: Study, methods: Sequence[str], labels: Mapping[str, str], path: Path) -> Path:
    """Distribution of the per-instance OKS (test split, all seeds pooled) per method, with
    each method's mean OKS."""
    names = display_names(methods, labels)
    colors = {names[m]: c for m, c in palette(methods).items()}
    rows = []
    for m in _present(study, methods):
        for seed in study.ok_seeds(m):
            kp = study.keypoints.get((m, seed))
            if kp is not None and 'oks' in kp:
                v = np.asarray(kp['oks'], float)
                rows.append(pd.DataFrame({'method': m, 'oks': v[np.isfinite(v)]}))
    title = 'Object keypoint similarity per test instance'
    if not rows:
        return placeholder(path, title, 'No per-instance OKS (eval/keypoints.npz "oks").')
    df = _named(pd.concat(rows, ignore_index=True), names)
    order = [names[m] for m in methods if (df.method == m).any()]
    fig, ax = plt.subplots(figsize=(max(7, 2.2 * len(order) + 3), 4.8))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sns.violinplot(df, x='Method', y='oks', hue='Method', order=order, hue_order=order,
                       palette=colors, legend=False, cut=0, inner='quartile', saturation=1,
                       ax=ax)
    means = df.groupby('Method')['oks'].mean()
    for x, name in enumerate(order):
        ax.plot(x, means[name], 'D', color='black', markersize=6, zorder=3)
        ax.annotate(f'mean {means[name]:.3f}', (x, means[name]), xytext=(8, 0),
                    textcoords='offset points', fontsize=8, va='center')
    ax.set_xticks(range(len(order)), [_wrap(o, 14) for o in order], rotation=30, ha='right',
                  fontsize=9)
    ax.set(xlabel='', ylabel='OKS of the instance (COCO sigmas, annotated area)', ylim=(0, 1.02),
           title=f'{title} (seeds pooled; diamond: mean OKS)')
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------------- sharpness

def map_sharpness(heatmaps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint map of (n, C, H, W) heatmaps (C = K, or K+1 with background first):
    spatial entropy in bits of the map clipped at 0 and normalised to sum 1, and the peak width
    (pixels ≥ half the maximum). NaN for an all-zero map."""
    hm = np.asarray(heatmaps, float)
    if hm.shape[1] == k + 1:
        hm = hm[:, 1:]
    maps = np.clip(hm, 0, None).reshape(-1, hm.shape[-2] * hm.shape[-1])
    total = maps.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        q = maps / total
        ent = -np.sum(np.where(q > 0, q * np.log2(np.where(q > 0, q, 1)), 0.0), axis=1)
        peak = maps.max(axis=1, keepdims=True)
        width = (maps >= 0.5 * peak).sum(axis=1).astype(float)
    empty = total[:, 0] <= 0
    ent[empty] = np.nan
    width[empty] = np.nan
    return ent, width


def sharpness(study: Study, methods: Sequence[str], labels: Mapping[str, str], path: Path) -> Path:
    """Distribution of keypoint-map entropy and peak width at each run's final snapshot."""
    names = display_names(methods, labels)
    colors = {names[m]: c for m, c in palette(methods).items()}
    rows, grid, epochs, other_grid = [], None, set(), []
    for m in _present(study, methods):
        for seed in study.ok_seeds(m):
            eps = study.snapshot_epochs.get((m, seed))
            if not eps:  # no snapshots (e.g. RLE: no maps): left out
                continue
            snap = study.load_snapshot(m, seed, eps[-1])
            # entropy (bits) and width (pixels) compare only on one grid: the first run's
            if grid is not None and tuple(snap['heatmaps'].shape[-2:]) != grid:
                other_grid.append(m)
                continue
            epochs.add(eps[-1])
            ent, width = map_sharpness(snap['heatmaps'], int(snap['gt'].shape[1]))
            grid = tuple(snap['heatmaps'].shape[-2:])
            rows.append(pd.DataFrame({'method': m, 'entropy': ent, 'width': width}))
    title = 'Heatmap sharpness at the final epoch'
    if not rows:
        return placeholder(path, title, 'No heatmap snapshots were found.')
    df = _named(pd.concat(rows, ignore_index=True), names)
    order = [names[m] for m in methods if (df.method == m).any()]
    fig, axes = plt.subplots(1, 2, figsize=(max(9, 2.4 * len(order) + 3), 4.8))
    specs = [('entropy', 'spatial entropy of a keypoint map (bits)', 'Entropy (lower = sharper)'),
             ('width', 'peak width (heatmap pixels ≥ ½ max)', 'Peak width (lower = sharper)')]
    for ax, (col, ylabel, ptitle) in zip(axes, specs):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            sns.boxplot(df, x='Method', y=col, hue='Method', order=order, hue_order=order,
                        palette=colors, legend=False, fliersize=2, width=0.6, saturation=1,
                        ax=ax)
        if col == 'entropy':
            ax.axhline(math.log2(grid[0] * grid[1]), ls=':', c='grey', lw=1)
            ax.annotate('uniform map', (0.02, math.log2(grid[0] * grid[1])),
                        xycoords=('axes fraction', 'data'), va='top', fontsize=8, color='grey')
        ax.set_xticks(range(len(order)), [_wrap(o, 14) for o in order], rotation=30, ha='right',
                      fontsize=9)
        ax.set(xlabel='', ylabel=ylabel, title=ptitle)
    ep = ', '.join(str(e) for e in sorted(epochs))
    skipped = sorted({names[m] for m in other_grid})
    note = f'\nnot on this grid, left out: {", ".join(skipped)}' if skipped else ''
    fig.suptitle(f'{title} (epoch {ep}; {grid[0]}×{grid[1]} heatmaps; every keypoint channel of '
                 f'every snapshot image and seed){note}', fontsize=11)
    fig.tight_layout()
    return save(fig, path)
