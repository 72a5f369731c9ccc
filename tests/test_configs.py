"""Every formulation config builds with MMPose's own builder and trains/tests one batch on
the stickman data; the configs are usable from a plain MMPose config via custom_imports."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from bench.config import build_config
from bench.params import CONFIG_DIR, load_params


@pytest.fixture(scope='module')
def params(tiny_data):
    import os
    os.environ['POSEBENCH_WORKDIR'] = str(tiny_data)
    try:
        yield load_params(tiny_data / 'params.yaml')
    finally:
        del os.environ['POSEBENCH_WORKDIR']


@pytest.mark.parametrize('method', ['regression_dark', 'regression', 'regression_ohkm', 'cls_ce',
                                    'cls_ohem', 'cls_ohem1',
                                    'cls_weighted', 'cls_focal',
                                    # the zoo (tests/test_zoo.py)
                                    'simcc', 'regression_udp', 'rle', 'dsnt',
                                    'regression_focal',
                                    # the README's worked example (tests/test_formulations.py)
                                    'ipr'])
def test_config_trains_and_tests_one_batch(params, tiny_data, method, monkeypatch):
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    from mmpose.apis import init_model  # noqa: F401  (registers everything)
    from mmpose.models import build_pose_estimator
    from mmpose.registry import DATASETS
    cfg = build_config(params, method, seed=0)
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = build_pose_estimator(cfg.model)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([train_set[i] for i in range(4)])
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    optim.step()
    channels = 18 if method.startswith('cls') else 17
    # the 1x1 layer after the deconvolution trunk: the head's own, or that of the HeatmapHead
    # that SimCC and DSNT build inside; RLE has a linear layer (x, y and two scales per joint)
    final = {'simcc': lambda h: h.deconv_head.final_layer,
             'dsnt': lambda h: h.simplebaseline_head.final_layer,
             'ipr': lambda h: h.simplebaseline_head.final_layer,
             'rle': lambda h: None}.get(method, lambda h: h.final_layer)(model.head)
    if final is None:
        assert model.head.fc.out_features == 17 * 4
    else:
        assert final.out_channels == channels

    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    model.eval()
    with torch.no_grad():
        samples = model.test_step(pseudo_collate([test_set[i] for i in range(3)]))
    assert samples[0].pred_instances.keypoints.shape == (1, 17, 2)
    scores = samples[0].pred_instances.keypoint_scores
    if channels == 18:
        assert ((scores >= 0) & (scores <= 1)).all()


def test_plain_mmpose_config_with_custom_imports(tmp_path):
    """A user's own MMPose config reaches our modules through `custom_imports` alone."""
    cfg_file = tmp_path / 'user_config.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['bench'], allow_failed_imports=False)\n"
        "codec = dict(type='PixelClassLabel', input_size=(64, 64), heatmap_size=(16, 16),"
        " sigma=1.5)\n"
        "model = dict(type='TopdownPoseEstimator',"
        " backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),"
        " head=dict(type='PixelClassHead', in_channels=64, out_channels=17,"
        " deconv_out_channels=(8, 8, 8), deconv_kernel_sizes=(4, 4, 4),"
        " loss=dict(type='PixelFocalLoss', gamma=2.0), decoder=codec))\n")
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope('mmpose')
    from mmpose.models import build_pose_estimator
    from mmpose.registry import KEYPOINT_CODECS
    model = build_pose_estimator(cfg.model)
    out = model(torch.zeros(2, 3, 64, 64), None, mode='tensor')
    assert out.shape == (2, 18, 16, 16)
    assert type(KEYPOINT_CODECS.build(cfg.codec)).__name__ == 'PixelClassLabel'


def test_formulation_configs_differ_only_in_head_and_codec():
    """Fairness by construction: the resolved configs agree on everything but the head,
    the codec and the target generator."""
    params = load_params(CONFIG_DIR.parent / 'params.yaml')

    def split(method):
        cfg = build_config(params, method, 0).to_dict()
        cfg.pop('work_dir')  # runs/<method>/...
        codec, head = cfg.pop('codec'), cfg['model'].pop('head')
        # the batched data path wraps the stock dataset (its pipeline stays the reference) and
        # encodes with the same codec in the data preprocessor
        assert cfg['train_dataloader']['dataset']['type'] == 'BatchedTopdownDataset'
        for t in cfg['train_dataloader']['dataset']['dataset']['pipeline']:
            if t['type'] == 'GenerateTarget':
                assert t.pop('encoder') == codec
        assert cfg['model']['data_preprocessor'].pop('codec') == codec
        assert head.pop('decoder') == codec
        for key in ('type', 'loss'):
            head.pop(key)
        geometry = {k: codec[k] for k in ('input_size', 'heatmap_size', 'sigma')}
        return cfg, head, geometry

    reg, cls = split('regression'), split('cls_ohem')
    assert reg == cls
