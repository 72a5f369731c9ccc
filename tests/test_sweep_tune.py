"""The resolution axis (``sweep``) and the learning-rate budget (``tune``), through the real
DVC pipeline on a tiny configuration, plus the units they rest on."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.params import Params, ParamsError, geometry_tag, load_params
from bench.runs import RunPaths, find_runs, prune_seeds
from conftest import write_params


def _params(tmp_path: Path, **overrides) -> Params:
    return load_params(write_params(tmp_path, **overrides))


# ------------------------------------------------------------------------------ params, layout

def test_sweep_geometries_follow_the_model(tmp_path):
    p = _params(tmp_path, sweep=[{'heatmap_size': [32, 32], 'sigma': 2.0},
                                 {'heatmap_size': [8, 8]}])
    assert p.geometries() == [None, 'hm32s2', 'hm8s1.5']
    m = p.at_geometry('hm32s2').model
    # the input follows at model.input_size / model.heatmap_size (64 / 16 = 4)
    assert m.input_size == (128, 128) and m.heatmap_size == (32, 32) and m.sigma == 2.0
    assert p.at_geometry('hm8s1.5').model.input_size == (32, 32)
    assert p.at_geometry(None) is p
    with pytest.raises(ParamsError, match='hm64s2'):
        p.at_geometry('hm64s2')
    assert geometry_tag((48, 64), 1.5) == 'hm48x64s1.5'


@pytest.mark.parametrize('sweep, message', [
    ([{'heatmap_size': [16, 16]}], "model's own geometry"),
    ([{'heatmap_size': [32, 32]}, {'heatmap_size': [32, 32], 'sigma': 1.5}], 'duplicate'),
    ([{'heatmap_size': [10, 10]}], 'sweep'),  # input 40: not a multiple of the stride
    ([{'heatmap_size': [32, 32], 'size': 3}], "unknown key 'sweep.0.size'"),
])
def test_bad_sweep_is_one_line(tmp_path, sweep, message):
    with pytest.raises(ParamsError, match=message) as err:
        _params(tmp_path, sweep=sweep)
    assert '\n' not in str(err.value)


def test_tune_grid_is_validated(tmp_path):
    with pytest.raises(ParamsError, match='tune.lrs'):
        _params(tmp_path, tune={'lrs': [0.01, -1]})
    assert _params(tmp_path, tune={'lrs': [0.01, 0.001]}).tune.lrs == (0.001, 0.01)


def test_swept_runs_live_beside_the_method_runs(tmp_path):
    run = RunPaths('cls_ohem', 2, tmp_path, 'hm32s2')
    assert run.train == tmp_path / 'train' / 'cls_ohem' / 'hm32s2-seed2'
    assert run.name == 'cls_ohem/hm32s2-seed2' and run.key == 'hm32s2-seed2'
    for r in (run, RunPaths('cls_ohem', 2, tmp_path), RunPaths('cls_ohem', 0, tmp_path, 'hm8s1.5')):
        r.train.mkdir(parents=True)
    run.stale.mkdir()
    assert [(r.geometry, r.seed) for r in find_runs('train', tmp_path)] == [
        (None, 2), ('hm32s2', 2), ('hm8s1.5', 0)]
    # a geometry dropped from `sweep` goes, with its stale folder; the others stay
    removed = prune_seeds('cls_ohem', [0, 2], ('train',), tmp_path, geometries=[None, 'hm8s1.5'])
    assert sorted(p.name for p in removed) == ['hm32s2-seed2', 'hm32s2-seed2.stale']
    assert [(r.geometry, r.seed) for r in find_runs('train', tmp_path)] == [
        (None, 2), ('hm8s1.5', 0)]


def test_method_lr_needs_a_choice_from_the_grid(tmp_path, monkeypatch):
    from bench.errors import RunError
    from bench.runs import method_lr, tuned_file
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tmp_path))
    off = _params(tmp_path)
    assert method_lr(off, 'cls_ohem') == off.train.lr  # tuning off: the documented value
    on = _params(tmp_path, tune={'enabled': True, 'lrs': [0.001, 0.01]})
    with pytest.raises(RunError, match='tune@cls_ohem'):
        method_lr(on, 'cls_ohem')
    path = tuned_file('cls_ohem')
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'enabled': True, 'lr': 0.003}))
    with pytest.raises(RunError, match='not a choice'):  # an older grid's choice
        method_lr(on, 'cls_ohem')
    path.write_text(json.dumps({'enabled': True, 'lr': 0.01}))
    assert method_lr(on, 'cls_ohem') == 0.01


# --------------------------------------------------------------------------------- the figure

def _table() -> pd.DataFrame:
    from bench.report.resolution import COLUMNS
    rows = []
    for hm, sigma, d in ((8, 1.0, -0.03), (16, 1.5, -0.01), (32, 2.0, 0.02)):
        for v, shift in (('cls_ohem', 0.0), ('simcc', 0.05)):
            rows.append(dict(geometry=geometry_tag((hm, hm), sigma), input_size=f'{4*hm}x{4*hm}',
                             heatmap_size=f'{hm}x{hm}', sigma=sigma, variant=v,
                             variant_label=v, baseline='regression_dark', metric='PCK@0.1', n=3,
                             baseline_mean=0.5, variant_mean=0.5 + d + shift,
                             mean_diff=d + shift, ci_low=d + shift - 0.01,
                             ci_high=d + shift + 0.02, p_holm=0.5, seed_win_rate=0.5))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_resolution_figure_draws_the_table(tmp_path, monkeypatch):
    """Every point and error bar lands on the table's difference and CI, at log2(heatmap)."""
    from bench.report import figures as F
    from bench.report.resolution import resolution_figure
    drawn = {}
    save = F.save

    def keep(fig, path):
        drawn['fig'] = fig
        return save(fig, path)
    monkeypatch.setattr(F, 'save', keep)
    table = _table()
    out = resolution_figure(table, ['regression_dark', 'cls_ohem', 'simcc'], {},
                            tmp_path / 'resolution.png')
    assert out.stat().st_size > 5_000
    ax = drawn['fig'].axes[0]
    bars = {c.get_label(): c for c in ax.containers}  # one errorbar container per series
    assert set(bars) == {'cls_ohem', 'simcc'}
    for v, c in bars.items():
        t = table[table.variant == v]
        x, y = c.lines[0].get_data()
        np.testing.assert_allclose(np.round(x), np.log2([8, 16, 32]))
        np.testing.assert_allclose(y, t.mean_diff)
        # the error bars: one vertical segment per point, from ci_low to ci_high
        segments = c.lines[2][0].get_segments()
        np.testing.assert_allclose([s[:, 1].min() for s in segments], t.ci_low)
        np.testing.assert_allclose([s[:, 1].max() for s in segments], t.ci_high)
        np.testing.assert_allclose([s[:, 0].mean() for s in segments], x)


def test_uneven_floors_are_named():
    from bench.report.resolution import uneven_floors
    table = _table().assign(baseline_floor=1.0, variant_floor=1.0)
    assert uneven_floors(table) == []
    table.loc[0, 'variant_floor'] = 0.98  # hm8s1, cls_ohem
    table.loc[3, 'baseline_floor'] = float('nan')  # no floor: not a difference
    assert uneven_floors(table) == ['hm8s1 (cls_ohem)']


def test_resolution_table_pairs_at_each_geometry():
    """The difference at a geometry is the paired mean difference of that geometry's runs."""
    from bench.report.collect import Study
    from bench.report.resolution import resolution_table
    points = []
    for tag, hm, base, var in (('hm8s1', 8, [0.5, 0.6, 0.7], [0.4, 0.45, 0.65]),
                               ('hm16s1.5', 16, [0.6, 0.7, 0.8], [0.7, 0.75, 0.85])):
        metrics = pd.DataFrame(
            [dict(method='regression_dark', seed=s, metric='PCK@0.1', value=v)
             for s, v in enumerate(base)]
            + [dict(method='cls_ohem', seed=s, metric='PCK@0.1', value=v)
               for s, v in enumerate(var)])
        runs = pd.DataFrame([dict(method=m, seed=s, status='ok') for m in
                             ('regression_dark', 'cls_ohem') for s in range(3)])
        study = Study(runs_root=Path('.'), methods=['regression_dark', 'cls_ohem'],
                      seeds=[0, 1, 2], runs=runs, metrics=metrics, per_joint=pd.DataFrame(),
                      curves=pd.DataFrame(), pck_curves=pd.DataFrame(), geometry=tag)
        points.append(dict(study=study, tag=tag, input_size=(4 * hm, 4 * hm),
                           heatmap_size=(hm, hm), sigma=1.0))
    table = resolution_table(points, 'regression_dark', 'PCK@0.1', {})
    assert list(table.geometry) == ['hm8s1', 'hm16s1.5']
    np.testing.assert_allclose(table.mean_diff, [np.mean([-0.1, -0.15, -0.05]),
                                                np.mean([0.1, 0.05, 0.05])])


# ------------------------------------------------------------------------- the real pipeline

@pytest.mark.slow
def test_sweep_and_tuning_through_dvc(tmp_path):
    """``dvc repro`` with two geometries and tuning on a tiny grid: each method's learning rate
    is the best of its trials on the validation split, its seeds train with it, the report
    shows the choice and draws the paired difference per resolution; a new geometry trains
    only the new runs."""
    from conftest import dvc_repo, run_dvc, stale_stages
    repo = dvc_repo(tmp_path / 'repo', train={'epochs': 1},
                    sweep=[{'heatmap_size': [8, 8], 'sigma': 1.0}],
                    tune={'enabled': True, 'lrs': [0.0005, 0.02], 'epochs': 1})
    run_dvc(repo, 'repro')

    runs, reports = repo / 'runs', repo / 'reports'
    tuning = pd.read_csv(reports / 'tuning.csv')
    readme = (reports / 'README.md').read_text()
    assert 'tuned per method with the same budget' in readme
    for row in tuning.itertuples():
        grid = {0.0005: row._5, 0.02: row._6}
        assert row.tuned and row.lr == max(grid, key=lambda lr: (grid[lr], -lr)), row
        choice = json.loads((runs / 'tuned' / f'{row.method}.json').read_text())
        assert choice['lr'] == row.lr
        for geometry in (None, 'hm8s1'):
            status = json.loads((RunPaths(row.method, 0, runs, geometry).train
                                 / 'status.json').read_text())
            assert status['lr'] == row.lr  # every geometry trains at the tuned rate
        assert f'**{row._5 if row.lr == 0.0005 else row._6:.3f}**' in readme

    axis = pd.read_csv(reports / 'resolution.csv')
    assert list(axis.geometry) == ['hm8s1', 'hm16s1.5'] and set(axis.variant) == {'cls_ohem'}
    assert list(axis.input_size) == ['32x32', '64x64']
    assert (reports / 'figures' / 'resolution.png').stat().st_size > 10_000
    assert 'figures/resolution.png' in readme
    # at 8x8 heatmaps and sigma 1 DARK regression's floor drops below classification's
    assert axis.loc[0, 'baseline_floor'] < axis.loc[0, 'variant_floor'] - 0.01
    assert 'Floors differ' in readme and 'hm8s1 (' in readme
    metrics = json.loads((runs / 'metrics' / 'cls_ohem.json').read_text())
    assert set(metrics) == {'seed0', 'hm8s1-seed0'}
    assert metrics['hm8s1-seed0']['geometry'] == 'hm8s1'

    # a third geometry: the train stages are stale, not the tuning (the rate does not depend
    # on the sweep); re-run, cls_ohem's stage trains only the new geometry's run (the other
    # stages downstream are the first repro's, already checked)
    doc = yaml.safe_load((repo / 'params.yaml').read_text())
    doc['sweep'].append({'heatmap_size': [4, 4], 'sigma': 1.0})
    (repo / 'params.yaml').write_text(yaml.safe_dump(doc, sort_keys=False))
    stale = stale_stages(repo)
    assert {'train@regression_dark', 'train@cls_ohem'} <= stale, stale
    assert not {s for s in stale if s.startswith('tune@')}, stale
    out = run_dvc(repo, 'repro', 'train@cls_ohem')
    assert "Running stage 'tune@cls_ohem'" not in out
    assert 'cls_ohem/seed0: already trained' in out
    assert 'cls_ohem/hm8s1-seed0: already trained' in out
    status = json.loads((RunPaths('cls_ohem', 0, runs, 'hm4s1').train / 'status.json')
                        .read_text())
    assert status['status'] == 'ok' and status['lr'] == tuning.set_index('method').lr['cls_ohem']


@pytest.mark.slow
def test_tuning_and_training_never_read_the_test_split(tiny_work):
    """Learning rates and the recipe are chosen on validation only: with the test split's
    annotations and images deleted, the tune stage (tuning on) and the train stage (its
    validation curves) still run to the end; only the evaluate stage needs the test split."""
    from conftest import bench
    write_params(tiny_work, train={'epochs': 1},
                 tune={'enabled': True, 'lrs': [0.001, 0.01], 'epochs': 1})
    root = tiny_work / 'data' / 'stickman'
    test_files = [img['file_name'] for img in
                  json.loads((root / 'annotations' / 'test.json').read_text())['images']]
    (root / 'annotations' / 'test.json').unlink()
    for name in test_files:
        (root / 'images' / name).unlink()
    bench(tiny_work, 'tune', '--method', 'cls_ohem')
    assert json.loads((tiny_work / 'runs' / 'tuned' / 'cls_ohem.json').read_text())['enabled']
    bench(tiny_work, 'train', '--method', 'cls_ohem')
    assert (RunPaths('cls_ohem', 0, tiny_work / 'runs').train / 'final.pth').is_file()
    out = bench(tiny_work, 'evaluate', '--method', 'cls_ohem', check=False)
    assert out.returncode != 0  # the split really is gone: evaluation cannot run


def test_tuning_markdown_says_when_a_choice_sits_at_the_grids_end():
    from bench.report.tuning import tuning_markdown
    table = pd.DataFrame([
        dict(method='a', label='A', tuned=True, lr=0.016, **{'val_PCK@lr=0.004': 0.5,
                                                              'val_PCK@lr=0.008': 0.52,
                                                              'val_PCK@lr=0.016': 0.55}),
        dict(method='b', label='B', tuned=True, lr=0.008, **{'val_PCK@lr=0.004': 0.5,
                                                              'val_PCK@lr=0.008': 0.6,
                                                              'val_PCK@lr=0.016': 0.55})])
    md = tuning_markdown(table, epochs=4, seed=0, lr=0.008)
    assert '**0.550**' in md and '**0.600**' in md
    assert 'at an end of the grid (0.004–0.016) for A: a wider grid' in md
    inside = tuning_markdown(table.iloc[1:], epochs=4, seed=0, lr=0.008)
    assert 'end of the grid' not in inside
