# The method under test: K+1 channels (background first) that are per-pixel probabilities,
# a softmax head and per-pixel cross-entropy. The loss variant (plain, hard negative mining,
# balanced, focal) is chosen in params.yaml (`methods.<name>.loss`); the default is OHEM 1:3.
_base_ = ['./_base_/default.py']

codec = dict(
    type='PixelClassLabel',
    input_size=_base_.input_size,
    heatmap_size=_base_.heatmap_size,
    sigma=_base_.sigma)

model = dict(
    head=dict(
        type='PixelClassHead',
        loss=dict(type='PixelCrossEntropyLoss', neg_pos_ratio=3, use_target_weight=True),
        decoder=codec))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
