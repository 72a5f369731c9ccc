# IPR (integral pose regression, Sun et al. 2018): DSNT's soft-argmax over K soft-maxed
# heatmaps, trained on the coordinates alone (MMPose's IntegralRegressionHead with SmoothL1,
# as its ipr_res50 config); codec, trunk, flip test and data pipeline are DSNT's.
_base_ = ['./dsnt.py']

model = dict(head=dict(
    type='IntegralRegressionHead',
    loss=dict(_delete_=True, type='SmoothL1Loss', use_target_weight=True)))
