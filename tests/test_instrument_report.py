"""The report's instrument sections: method table, codec floor next to the trained result, and
the loss-mechanism curves (bench/report/instrument.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.report import instrument


def _floor():
    return pd.DataFrame([
        dict(method='regression_dark', label='Reg', active=True, codec='MSRAHeatmap', note='',
             **{'PCK@0.05': 0.996, 'PCK@0.1': 1.0, 'EPE': 1.0}),
        dict(method='cls_ohem', label='Cls', active=True, codec='PixelClassLabel', note='',
             **{'PCK@0.05': 1.0, 'PCK@0.1': 1.0, 'EPE': 0.9}),
        dict(method='regression', label='Stock', active=False, codec='MSRAHeatmap', note='',
             **{'PCK@0.05': 0.657, 'PCK@0.1': 0.928, 'EPE': 4.3}),
    ])


def _summary():
    return pd.DataFrame([dict(method='regression_dark', metric='PCK@0.1', mean=0.8),
                         dict(method='cls_ohem', metric='PCK@0.1', mean=0.7)])


def test_floor_table_share_of_the_floor():
    t = instrument.floor_table(_floor(), _summary(), 'PCK@0.1', {}).set_index('method')
    assert t.loc['regression_dark', 'share'] == pytest.approx(0.8)
    assert t.loc['cls_ohem', 'share'] == pytest.approx(0.7)
    assert np.isnan(t.loc['regression', 'result'])  # not trained: no share
    md = instrument.floor_markdown(_floor(), _summary(), (0.05, 0.1), 'PCK@0.1', {})
    assert '80.0%' in md and '70.0%' in md and 'Stock' in md


def test_floors_equal():
    f = _floor()
    assert instrument.floors_equal(f, ['regression_dark', 'cls_ohem'], 'PCK@0.05') is True
    assert instrument.floors_equal(f, ['regression', 'cls_ohem'], 'PCK@0.05') is False
    assert instrument.floors_equal(None, ['cls_ohem'], 'PCK@0.05') is None


def test_missing_files_are_named():
    assert 'dvc repro floor' in instrument.floor_markdown(None, _summary(), (0.1,), 'PCK@0.1', {})
    assert 'dvc repro floor' in instrument.methods_markdown(None, ['cls_ohem'], {})


def _curves(with_ratio: bool):
    rows = []
    for seed in (0, 1):
        for epoch in (1, 2):
            bg, fg = 0.3 * epoch + seed, 0.1 * epoch
            rows += [('cls_ohem', seed, 'train/bg_part', epoch, bg),
                     ('cls_ohem', seed, 'train/fg_part', epoch, fg),
                     ('cls_ohem', seed, 'train/bg_kept', epoch, 0.5),
                     ('cls_ohem', seed, 'val/PCK', epoch, 0.1)]
            if with_ratio:
                rows.append(('cls_ohem', seed, 'train/part_ratio', epoch, bg / fg))
    return SimpleNamespace(curves=pd.DataFrame(rows, columns=['method', 'seed', 'name', 'epoch',
                                                              'value']))


@pytest.mark.parametrize('with_ratio', [True, False])
def test_mechanism_curves_ratio_logged_or_derived(with_ratio):
    c = instrument.mechanism_curves(_curves(with_ratio), ['cls_ohem'])
    assert 'val/PCK' not in set(c.name)
    r = c[c.name == 'train/part_ratio'].set_index(['seed', 'epoch']).value
    assert len(r) == 4  # one value per run and epoch, never twice
    assert r[(1, 2)] == pytest.approx((0.6 + 1) / 0.2)


def test_mechanism_table_and_figure(tmp_path):
    study = _curves(True)
    t = instrument.mechanism_table(study, ['cls_ohem'], {'cls_ohem': 'Cls'})
    assert t.loc['Cls', 'train/bg_kept'] == pytest.approx(0.5)
    assert t.loc['Cls', 'train/bg_part'] == pytest.approx(np.mean([0.6, 1.6]))
    path = instrument.mechanism_figure(study, ['cls_ohem'], {}, tmp_path / 'm.png')
    assert path.stat().st_size > 5_000
    # nothing logged: a placeholder, still written (a DVC out)
    empty = SimpleNamespace(curves=study.curves.iloc[:0])
    assert instrument.mechanism_figure(empty, ['cls_ohem'], {}, tmp_path / 'e.png').is_file()


def _mech_study(kept: dict, ratios: dict):
    """Curves of methods with per-epoch kept fractions and part ratios (seeds 0 and 1)."""
    rows = []
    for m in set(kept) | set(ratios):
        for seed in (0, 1):
            for epoch, (k, r) in enumerate(zip(kept.get(m, [None] * 3),
                                               ratios.get(m, [None] * 3)), start=1):
                if k is not None:
                    rows.append((m, seed, 'train/bg_kept', epoch, k))
                if r is not None:
                    rows.append((m, seed, 'train/part_ratio', epoch, r))
    return SimpleNamespace(curves=pd.DataFrame(rows, columns=['method', 'seed', 'name',
                                                              'epoch', 'value']))


def test_mechanism_verdicts_name_what_each_method_was():
    """Mining that kept >= 99% of the background is plain CE; a balancing loss whose parts sat
    more than 3x apart at any epoch is not balanced in value; both are said, with a warning."""
    study = _mech_study(
        kept={'ohem_idle': [1.0, 1.0, 0.995], 'ohem_acts': [0.4, 0.37, 0.36],
              'weighted': [1.0, 1.0, 1.0], 'vbal': [1.0, 1.0, 1.0]},
        ratios={'ohem_idle': [0.5, 0.2, 0.1], 'ohem_acts': [0.5, 0.3, 0.3],
                'weighted': [0.9, 0.13, 0.07], 'vbal': [1.0, 1.0, 1.0]})
    losses = {'ohem_idle': {'neg_pos_ratio': 3}, 'ohem_acts': {'neg_pos_ratio': 3},
              'weighted': {'balance': 'count'}, 'vbal': {'balance': 'value'}}
    methods = ['ohem_idle', 'ohem_acts', 'weighted', 'vbal']
    v = instrument.mechanism_verdicts(study, methods, losses, {}).set_index('method')
    assert v.loc['ohem_idle', 'mining_acts'] is False or not v.loc['ohem_idle', 'mining_acts']
    assert 'plain CE' in v.loc['ohem_idle', 'what_it_was']
    assert v.loc['ohem_acts', 'mining_acts'] and v.loc['ohem_acts', 'what_it_was'] == ''
    assert v.loc['ohem_acts', 'bg_kept_mean'] == pytest.approx(np.mean([0.4, 0.37, 0.36]))
    assert not v.loc['weighted', 'balanced'] and '14× apart' in v.loc['weighted', 'what_it_was']
    assert v.loc['vbal', 'balanced'] and v.loc['vbal', 'what_it_was'] == ''
    assert v.loc['vbal', 'mining_acts'] is None  # no mining: nothing to say
    md = instrument.verdicts_markdown(v.reset_index())
    assert md.count('> **Warning') == 2
    assert 'Warning — ohem_idle' in md and 'Warning — weighted' in md
    assert 'Warning — vbal' not in md and 'Warning — ohem_acts' not in md


def test_mining_panel_draws_only_the_methods_that_mine(tmp_path, monkeypatch):
    """A loss without mining keeps all background by definition: its line (at 1.0) is left
    out of the mining panel, where it would hide a mining method's line at 1.0."""
    import matplotlib.axes
    drawn = []
    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((self.get_title(), kwargs.get('label')))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, 'plot', spy)
    study = _mech_study(kept={'ohem': [0.4, 0.4, 0.4], 'vbal': [1.0, 1.0, 1.0]},
                        ratios={'ohem': [0.3, 0.3, 0.3], 'vbal': [1.0, 1.0, 1.0]})
    instrument.mechanism_figure(study, ['ohem', 'vbal'], {}, tmp_path / 'm.png',
                                miners=['ohem'])
    # titles are set after plotting: the first panel's lines come first, one per method
    assert [label for _, label in drawn] == ['ohem', 'ohem', 'vbal']
