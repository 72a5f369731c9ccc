# Heatmap "regression" with CornerNet's penalty-reduced focal loss (Law & Deng, ECCV 2018;
# MMPose's FocalHeatmapLoss, alpha 2, beta 4) instead of the MSE: the regression side's own
# answer to the background/keypoint imbalance. Same DARK codec (targets and decoding) and trunk
# as regression_dark.py; two changes that the focal loss needs:
# - the maps are probabilities: SigmoidHeatmapHead = HeatmapHead + clamp(sigmoid, 1e-4, 1-1e-4)
#   (the focal loss takes log(p) and log(1 - p); the decoder sees the same maps), its final
#   bias started at prior 0.1 as CornerNet does;
# - PeakFocalHeatmapLoss = FocalHeatmapLoss whose positive is each channel's peak pixel, set to
#   exactly 1: the stock loss counts only target == 1 as positive, and DARK's sub-pixel
#   Gaussians almost never reach 1 (bench/models/losses.py).
# The focal loss's optimum is not the Gaussian: it pushes the peak pixel to 1 and every other
# pixel towards 0 (the Gaussian only lowers their penalty), so trained maps are sharper than
# the targets, and DARK's blur-then-Taylor step on a one-pixel peak lands near its centre.
_base_ = ['./regression_dark.py']

model = dict(
    head=dict(
        type='SigmoidHeatmapHead',
        loss=dict(type='PeakFocalHeatmapLoss', alpha=2, beta=4, use_target_weight=True)))
