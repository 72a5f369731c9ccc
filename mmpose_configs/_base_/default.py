# Everything the formulations share: data, backbone, input/heatmap geometry, schedule, runtime.
# A formulation config sets only the codec, the head (with its loss) and the target generator.
# `bench.config.build_config` overwrites the values below from params.yaml; used as they are,
# these configs train on the default generated data (`python -m bench data` first).
_base_ = ['mmpose::_base_/default_runtime.py']

custom_imports = dict(imports=['bench'], allow_failed_imports=False)

input_size = (64, 64)
heatmap_size = (16, 16)
sigma = 1.5
num_keypoints = 17

# runtime
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),  # warm-up
    dict(type='MultiStepLR', begin=0, end=10, milestones=[8], gamma=0.1, by_epoch=True),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    # every epoch, so that a killed run resumes close to where it stopped
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_last=True),
)
# SyncBuffersHook only matters for multi-GPU BN; it warns on a single CPU process.
custom_hooks = []
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)

# model: a slim ResNet (no pretrained weights can be downloaded here)
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='ResNet', depth=18, stem_channels=16, base_channels=16),
    # the formulation configs fill in `type`, `loss` and `decoder`
    head=dict(
        in_channels=16 * 8,
        out_channels=num_keypoints,
        # stride 32 -> 2x2 features at 64x64; three x2 deconvolutions -> 16x16 heatmaps
        deconv_out_channels=(32, 32, 32),
        deconv_kernel_sizes=(4, 4, 4)),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

# data
dataset_type = 'CocoDataset'
data_mode = 'topdown'
data_root = 'data/stickman/'
metainfo = dict(from_file='configs/_base_/datasets/coco.py')

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_factor=30.0, scale_factor=(0.8, 1.2)),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='GenerateTarget', encoder=None),  # the formulation's codec
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    # Workers are re-created each epoch and seeded from the loader's generator, which
    # EpochSeedHook (added by the train stage) seeds from (seed, epoch, rank): a new
    # augmentation stream every epoch, the same for the same seed, and a resumed run draws what
    # an uninterrupted one does. MMEngine's default worker_init_fn (seed + worker id) would
    # replay one stream every epoch.
    persistent_workers=False,
    worker_init_fn=dict(type='posebench_epoch_worker_init'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline,
    ))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=val_pipeline,
    ))
# the validation loader on the test split
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='annotations/test.json'))

# validation during training draws the learning curves (PCK, EPE); OKS AP is scored on the
# test split only (test_evaluator, the evaluate stage): COCO's evaluation costs ~0.5 s a time
val_evaluator = [
    dict(type='PCKAccuracy', thr=0.1, norm_item='bbox'),
    dict(type='EPE'),
]
test_evaluator = [
    dict(type='PCKAccuracy', thr=0.1, norm_item='bbox'),
    dict(type='EPE'),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/test.json'),
]
