# Regression with residual log-likelihood estimation (RLE; Li et al., ICCV 2021), MMPose's
# RegressionLabel + RLEHead + RLELoss: the backbone's features are averaged (GlobalAveragePooling
# neck) and one linear layer outputs each keypoint's normalised (x, y) and its scale; the loss
# is the likelihood under a RealNVP-learned residual density. No heatmaps at all. Test-time
# settings as MMPose's RLE configs: flip test on the coordinates, the flipped x shifted by one
# input pixel.
_base_ = ['./_base_/default.py']

codec = dict(type='RegressionLabel', input_size=_base_.input_size)

model = dict(
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        _delete_=True,
        type='RLEHead',
        in_channels=16 * 8,
        num_joints=_base_.num_keypoints,
        loss=dict(type='RLELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(_delete_=True, flip_test=True, shift_coords=True))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
