"""The formulation records (``bench/formulations``, issue 28 item 1): one record per family,
read by everything that depends on the formulation; the README's worked example (IPR) is the
committed files and works through the whole path: config, floor, one training step."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from mmengine.config import Config

import bench  # noqa: F401  (registers the modules)
from bench import formulations as F
from bench.config import build_config
from bench.errors import RunError
from bench.params import CONFIG_DIR, ROOT, load_params


def _readme_example() -> list[tuple[str, str]]:
    """(language, text) of each fenced block of the README's "Adding a formulation"."""
    text = (ROOT / 'README.md').read_text()
    start = text.index('## Adding a formulation')
    section = text[start:text.index('\n## ', start + 3)]
    return re.findall(r'```(\w+)\n(.*?)```', section, flags=re.S)


def test_readme_example_is_the_committed_files():
    blocks = _readme_example()
    assert [lang for lang, _ in blocks] == ['python', 'python', 'yaml']
    (_, record), (_, config), (_, entry) = blocks
    assert record == (ROOT / 'bench' / 'formulations' / 'ipr.py').read_text()
    assert config == (CONFIG_DIR / 'ipr.py').read_text()
    assert entry in (ROOT / 'params.yaml').read_text()
    params = load_params(ROOT / 'params.yaml')
    assert params.methods['ipr'].config == 'ipr.py'


def test_every_config_has_a_record():
    """Each method's head has a family, and that family decodes with the method's codec."""
    params = load_params(ROOT / 'params.yaml')
    for method, spec in params.methods.items():
        cfg = Config.fromfile(str(CONFIG_DIR / spec.config))
        f = F.check_pair(cfg.model.head.type, cfg.codec.type)
        assert F.for_head(cfg.model.head.type) is f, method
    assert F.for_head('IntegralRegressionHead').name == 'IPR'
    assert F.for_codec('UDPHeatmapExact').name == 'heatmap regression'  # a registered subclass


def test_register_refuses_a_second_owner_or_a_different_codec_description():
    ipr = F.for_head('IntegralRegressionHead')
    with pytest.raises(ValueError, match='head IntegralRegressionHead belongs to IPR'):
        F.register(dataclasses.replace(ipr, name='IPR again'))
    with pytest.raises(ValueError, match='codec IntegralRegressionLabel is describe-described'):
        F.register(dataclasses.replace(ipr, name='other', heads=('OtherHead',),
                                       describe=lambda codec: ('x', 'y')))
    with pytest.raises(ValueError, match='no perfect_output and no no_floor'):
        F.register(dataclasses.replace(ipr, name='other', heads=('OtherHead',),
                                       perfect_output=None))
    assert 'IPR again' not in F.FORMULATIONS and 'other' not in F.FORMULATIONS


def test_ipr_config_follows_the_model(tiny_data, monkeypatch):
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    params = load_params(tiny_data / 'params.yaml')
    ipr, dsnt = build_config(params, 'ipr', 0), build_config(params, 'dsnt', 0)
    m = params.model
    assert ipr.model.head.type == 'IntegralRegressionHead'
    assert ipr.model.head.loss == dict(type='SmoothL1Loss', use_target_weight=True)
    # everything but the head's type and loss is DSNT's, derived from params.model
    assert ipr.codec == dsnt.codec and ipr.codec['heatmap_size'] == tuple(m.heatmap_size)
    for key in ('in_channels', 'in_featuremap_size', 'num_joints', 'deconv_out_channels',
                'deconv_kernel_sizes', 'decoder'):
        assert ipr.model.head[key] == dsnt.model.head[key], key
    assert ipr.model.test_cfg == dsnt.model.test_cfg
    assert F.for_head('IntegralRegressionHead').resolution(ipr.codec) is None


def test_ipr_floor_is_the_soft_argmax_ceiling(tiny_data, monkeypatch):
    """A perfect IPR network (the codec's own coordinates and maps) decodes every labelled
    keypoint within a hundredth of a pixel, flip test included, as DSNT's."""
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    from bench.evaluation.codec_floor import floor_metrics, perfect_predictions, split_samples
    params = load_params(tiny_data / 'params.yaml')
    cfg = build_config(params, 'ipr', 0)
    pp = perfect_predictions(cfg, split_samples(cfg)[:12])
    assert pp['mask'].any()
    assert floor_metrics(pp)['EPE'] < 0.01
    err = np.linalg.norm(pp['pred'] - pp['gt'], axis=-1)[pp['mask']]
    assert err.max() < 0.05


def test_a_head_without_a_record_stops_in_one_line(tiny_data, monkeypatch):
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    ipr = F.for_head('IntegralRegressionHead')
    monkeypatch.delitem(F.FORMULATIONS, ipr.name)
    with pytest.raises(RunError, match='head IntegralRegressionHead: no formulation record'):
        build_config(load_params(tiny_data / 'params.yaml'), 'ipr', 0)
