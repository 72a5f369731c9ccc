# The baseline, stock MMPose: K Gaussian heatmaps (MSRAHeatmap), HeatmapHead, MSE loss.
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
