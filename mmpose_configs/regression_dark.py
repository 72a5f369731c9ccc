# The fair regression baseline: stock MMPose heatmap regression with MMPose's own unbiased
# codec (DARK, Zhang et al. CVPR 2020). Encoding puts an untruncated Gaussian at the exact
# sub-pixel centre, so MMPose 1.3.2's truncation bug in `generate_gaussian_heatmaps` (peaks one
# pixel off when 3 sigma is not an integer) cannot shift its targets; decoding refines the
# arg-max with DARK's second-order Taylor step on the log of the (blurred) heatmap, the same
# kind of step as the classification decoder's. `bench.config` sets `blur_kernel_size` from sigma.
_base_ = ['./regression.py']

codec = dict(_base_.codec, unbiased=True)

model = dict(head=dict(decoder=codec))

train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, encoder=codec) if t['type'] == 'GenerateTarget' else t
    for t in _base_.train_pipeline
]))
