"""params.yaml validation: each broken file gives one line naming the key, value and rule."""
import copy
import subprocess
import sys

import pytest
import yaml

from bench.params import ROOT, ParamsError, load_params

GOOD = yaml.safe_load((ROOT / 'params.yaml').read_text())


def _edit(path, value):
    def apply(doc):
        *parents, last = path.split('.')
        node = doc
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return apply


_DELETE = object()

# (id, edit, substrings the one-line message must contain)
CASES = [
    ('unknown-top-key', _edit('trian', {'epochs': 3}), ["unknown key 'trian'"]),
    ('unknown-nested-key', _edit('model.sigmaa', 2.0), ["unknown key 'model.sigmaa'"]),
    ('sigma-zero', _edit('model.sigma', 0), ['model.sigma', '0', 'greater than 0']),
    ('sigma-negative', _edit('model.sigma', -1.5), ['model.sigma', '-1.5']),
    ('sigma-string', _edit('model.sigma', 'wide'), ['model.sigma', "'wide'", 'number']),
    ('heatmap-larger-than-input', _edit('model.heatmap_size', [128, 128]),
     ['model.heatmap_size', 'larger', 'input_size']),
    ('negative-epochs', _edit('train.epochs', -3), ['train.epochs', '-3']),
    ('zero-lr', _edit('train.lr', 0), ['train.lr', 'greater than 0']),
    ('empty-seeds', _edit('seeds', []), ['seeds', 'at least one seed']),
    ('duplicate-seeds', _edit('seeds', [0, 1, 1]), ['seeds', 'duplicate', '[1]']),
    ('missing-config', _edit('methods.cls_ohem.config', 'nope.py'),
     ['methods.cls_ohem.config', 'nope.py', 'no such config']),
    ('unknown-loss', _edit('methods.cls_ohem.loss', {'type': 'MagicLoss'}),
     ['methods.cls_ohem.loss', 'MagicLoss', 'unknown loss']),
    ('neg-pos-ratio-zero', _edit('methods.cls_ohem.loss',
                                 {'type': 'PixelCrossEntropyLoss', 'neg_pos_ratio': 0}),
     ['methods.cls_ohem.loss', 'neg_pos_ratio=0', '> 0']),
    ('active-method-undefined', _edit('active_methods', ['regression', 'cls_magic']),
     ['active_methods', 'cls_magic']),
    ('baseline-not-active', _edit('report.baseline', 'regression_ohkm'),
     ['report.baseline', 'regression_ohkm']),
    ('bad-source', _edit('data.source', 'imagenet'), ['data.source', "'imagenet'"]),
    ('probability-above-one', _edit('data.stickman.occluder_prob', 1.5),
     ['data.stickman.occluder_prob', '1.5']),
    ('bad-launcher', _edit('train.launcher', 'mpi'), ['train.launcher', "'mpi'"]),
    ('missing-methods', _edit('methods', _DELETE), ["missing key 'methods'"]),
    ('pck-threshold-out-of-range', _edit('eval.pck_thresholds', [0.1, 2.0]),
     ['eval.pck_thresholds', '(0, 1]']),
]


@pytest.mark.parametrize('edit,expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_params_give_one_line(tmp_path, edit, expected):
    doc = copy.deepcopy(GOOD)
    edit(doc)
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as info:
        load_params(path)
    msg = str(info.value)
    assert '\n' not in msg
    assert str(path) in msg
    for part in expected:
        assert part in msg, f'{part!r} not in {msg!r}'


def test_shipped_params_are_valid():
    params = load_params(ROOT / 'params.yaml')
    assert set(params.active_methods) <= set(params.methods)
    study = load_params(ROOT / 'profiles' / 'study' / 'params.yaml')
    assert len(study.seeds) >= 8 and study.train.epochs >= 15
    assert set(study.active_methods) == set(study.methods)


def test_invalid_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / 'p.yaml'
    bad.write_text('data: [unclosed\n')
    with pytest.raises(ParamsError, match='invalid YAML at line'):
        load_params(bad)
    bad.write_text('- a\n- b\n')
    with pytest.raises(ParamsError, match='must be a mapping'):
        load_params(bad)


def test_cli_exits_nonzero_with_one_line(tmp_path):
    doc = copy.deepcopy(GOOD)
    doc['model']['sigma'] = -1
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, '-m', 'bench', '--params', str(path), 'check-params'],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1 and 'model.sigma' in lines[0], proc.stderr


def test_project_losses_are_the_ones_bench_registers():
    """`check-params` knows our losses without importing MMPose: the list must stay true."""
    import bench
    from bench.params import PROJECT_LOSSES
    from mmpose.registry import MODELS

    bench.register_modules()
    ours = {name for name, cls in MODELS.module_dict.items()
            if cls.__module__.startswith('bench.') and name.endswith('Loss')}
    assert ours == PROJECT_LOSSES
