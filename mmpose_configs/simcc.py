# SimCC (Li et al., ECCV 2022): each keypoint as two 1-D classifications over sub-pixel bins of
# the input (x and y), with MMPose's SimCCLabel (Gaussian-smoothed labels), SimCCHead and
# KLDiscretLoss. The head keeps the heatmap heads' deconvolution trunk and K-channel 1x1 layer
# (it builds a HeatmapHead inside); only its last layers differ: two linear maps from each
# flattened K-map to the x and y bins. `bench.config` derives the geometry from params.yaml:
# in_featuremap_size = input_size // backbone output stride, the split ratio (this file's
# value, MMPose's default 2.0: half-pixel bins) and sigma in bins = model.sigma x heatmap
# stride x split ratio, so that the labels are as wide in input pixels as the heatmap
# methods' Gaussians (12 bins = 6 px at the default 64x64 / 16x16, sigma 1.5).
_base_ = ['./_base_/default.py']

codec = dict(
    type='SimCCLabel',
    input_size=_base_.input_size,
    sigma=12.0,
    simcc_split_ratio=2.0)

model = dict(
    head=dict(
        type='SimCCHead',
        input_size=_base_.input_size,
        in_featuremap_size=(2, 2),  # 64 // 32 with the stock stride-32 ResNet
        simcc_split_ratio=2.0,
        loss=dict(type='KLDiscretLoss', use_target_weight=True),
        decoder=codec),
    # MMPose's SimCC configs: flip test on the 1-D vectors, no shift
    test_cfg=dict(_delete_=True, flip_test=True))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
