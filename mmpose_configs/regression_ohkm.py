# Regression with its own hard mining (MMPose's online hard keypoint mining over channels),
# so that "classification + hard negative mining" is not compared with a regression that has none.
_base_ = ['./regression_dark.py']

model = dict(head=dict(loss=dict(type='KeypointOHKMMSELoss', use_target_weight=True, topk=8)))
