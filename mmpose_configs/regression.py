# Heatmap regression as MMPose ships it: K Gaussian heatmaps (MSRAHeatmap, biased: arg-max +
# quarter-pixel decoding, and the 1.3.2 target truncation bug), HeatmapHead, MSE loss. Kept as
# the "as shipped" row; the headline baseline is `regression_dark.py`.
_base_ = ['./_base_/default.py']

codec = dict(
    type='MSRAHeatmap',
    input_size=_base_.input_size,
    heatmap_size=_base_.heatmap_size,
    sigma=_base_.sigma)

model = dict(
    head=dict(
        type='HeatmapHead',
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
