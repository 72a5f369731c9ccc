# DSNT (Nibali et al., 2018), MMPose's IntegralRegressionLabel + DSNTHead with its stock loss
# (as MMPose's ipr_res50_dsnt config): the heatmap trunk's K maps are soft-maxed over the pixels
# and their expectation is the keypoint (soft-argmax); loss = SmoothL1 on the normalised
# coordinates + Jensen-Shannon divergence of each map to a normalised Gaussian.
# The JS term is FiniteJSDiscretLoss (bench/models/losses.py): MMPose's JSDiscretLoss, same
# value, but a finite gradient. The stock one's gradient is NaN as soon as one keypoint of the
# batch has weight 0 (its masked map is 0, and KLDivLoss's backward w.r.t. its target is
# log 0): the run diverged at its second iteration.
# One change from MMPose's config, on purpose: `unbiased=True`, so that the Gaussian of the
# JS term is drawn at the exact sub-pixel keypoint (DARK's encoding). The stock biased encoding
# rounds the centre and, in MMPose 1.3.2, puts it one pixel off within 3 sigma of the top/left
# border (`generate_gaussian_heatmaps` truncates negative corners towards 0): the two terms
# would then pull the expectation to different places. Decoding reads the coordinates only.
_base_ = ['./_base_/default.py']

codec = dict(
    type='IntegralRegressionLabel',
    input_size=_base_.input_size,
    heatmap_size=_base_.heatmap_size,
    sigma=_base_.sigma,
    unbiased=True,
    normalize=True)

model = dict(
    head=dict(
        _delete_=True,
        type='DSNTHead',
        in_channels=16 * 8,
        in_featuremap_size=(2, 2),  # 64 // 32 with the stock stride-32 ResNet
        num_joints=_base_.num_keypoints,
        deconv_out_channels=(32, 32, 32),
        deconv_kernel_sizes=(4, 4, 4),
        loss=dict(
            type='MultipleLossWrapper',
            losses=[
                dict(type='SmoothL1Loss', use_target_weight=True),
                dict(type='FiniteJSDiscretLoss', use_target_weight=True),
            ]),
        decoder=codec),
    # MMPose's DSNT config: flip test on the coordinates (flipped x shifted by one input pixel)
    test_cfg=dict(_delete_=True, flip_test=True, shift_coords=True, shift_heatmap=True))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
