"""The codec floor: what a *perfect* network would score with a method's codec and test-time
decoding.

A perfect network outputs, for every test instance, exactly the target its codec encodes from
the ground truth; with flip test it outputs, for the flipped input, the target of the flipped
ground truth. Those outputs go through the method's own head ``predict`` (its flip, shift and
averaging rules, its decoder) with only ``forward`` replaced, and the decoded keypoints are
mapped back to the original image as ``TopdownPoseEstimator`` does. The geometry (crop, input
frame) comes from the method's own test pipeline, so the floor is the ceiling that the codec,
the flip convention and the decoder leave to training: when two methods' floors differ, a
comparison of their trained results partly measures codecs, not formulations.
"""
from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import torch

from bench.errors import RunError
from bench.formulations import for_head

def _stack(outputs: list):
    """Per-instance perfect outputs -> the batch, tensor by tensor for tuple outputs."""
    if isinstance(outputs[0], tuple):
        return tuple(torch.stack(part) for part in zip(*outputs))
    return torch.stack(outputs)


def split_samples(cfg, ann_file: str | None = None) -> list[dict]:
    """The test split (or the annotation file ``ann_file`` of another split) through the
    method's test pipeline up to (excluding) packing: one dict per instance with
    ``transformed_keypoints`` (1, K, 2) in the model-input frame, ``keypoints`` (1, K, 2) in the
    image, ``keypoints_visible``, ``bbox`` and the ``input_center`` / ``input_scale`` of the
    crop."""
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules
    register_all_modules(init_default_scope=True)  # no Runner here to set MMPose's scope
    ds_cfg = cfg.test_dataloader.dataset.copy()
    if ann_file is not None:
        ds_cfg['ann_file'] = ann_file
    ds_cfg['pipeline'] = [t for t in ds_cfg['pipeline'] if t['type'] != 'PackPoseInputs']
    # xtcocotools announces every annotation file it loads (4 lines each, 12 per floor
    # stage): the stage's own lines say what it scored; POSEBENCH_VERBOSE=1 keeps them
    with (contextlib.nullcontext() if os.environ.get('POSEBENCH_VERBOSE', '') not in
          ('', '0', 'false', 'no') else contextlib.redirect_stdout(io.StringIO())):
        dataset = DATASETS.build(ds_cfg)
    return [dataset[i] for i in range(len(dataset))]


def _head(cfg):
    """The method's head, built, and its family's perfect output (:mod:`bench.formulations`);
    one line for a head whose family has no floor."""
    from mmpose.registry import MODELS
    head = MODELS.build(cfg.model.head)
    f = for_head(type(head).__name__)
    if f.perfect_output is None:
        raise RunError(f'codec floor of head {type(head).__name__}: {f.no_floor}')
    return head, f.perfect_output


def perfect_predictions(cfg, samples: list[dict] | None = None) -> dict[str, np.ndarray]:
    """Decode the ground truth of the test split as a perfect network of ``cfg``'s method would.

    Returns:
        dict with ``pred`` (N, K, 2) and ``gt`` (N, K, 2) in image pixels, ``mask`` (N, K)
        bool (labelled keypoints), ``norm`` (N, 2) the bbox size used to normalise PCK (as
        :class:`bench.evaluation.metrics.KeypointRecorder`).
    """
    from mmengine.structures import InstanceData
    from mmpose.registry import KEYPOINT_CODECS
    from mmpose.structures import PoseDataSample
    from mmpose.structures.keypoint import flip_keypoints
    from mmpose.utils import register_all_modules

    import bench  # noqa: F401  (our codec and head)
    register_all_modules(init_default_scope=True)  # no Runner here to set MMPose's scope
    samples = split_samples(cfg) if samples is None else samples
    codec = KEYPOINT_CODECS.build(cfg.codec)
    head, perfect = _head(cfg)
    head.eval()
    test_cfg = dict(cfg.model.get('test_cfg', {}))
    flip = bool(test_cfg.get('flip_test', False))
    in_size = tuple(int(v) for v in cfg.codec['input_size'])  # not every codec keeps it
    input_size = np.asarray(in_size, np.float32)

    outputs, flipped, data_samples = [], [], []
    for s in samples:
        kpts, vis = s['transformed_keypoints'][:1], s['keypoints_visible'][:1]
        outputs.append(perfect(codec.encode(kpts, vis)))
        if flip:
            f_kpts, f_vis = flip_keypoints(kpts, vis, image_size=in_size,
                                           flip_indices=s['flip_indices'])
            flipped.append(perfect(codec.encode(f_kpts, f_vis)))
        # input_size: the coordinate heads' flip (``flip_coordinates``) reads it
        ds = PoseDataSample(metainfo=dict(flip_indices=s['flip_indices'],
                                          input_size=in_size))
        ds.gt_instances = InstanceData()
        data_samples.append(ds)

    head.forward = lambda feats: feats  # the "features" are the perfect outputs themselves
    feats = _stack(outputs)
    if flip:
        feats = [feats, _stack(flipped)]
    # MMPose's DARK rescales each blurred map by max / max: 0 / 0 for the all-zero map of an
    # unlabelled keypoint, whose (NaN) prediction the metrics mask out anyway
    with torch.no_grad(), np.errstate(invalid='ignore', divide='ignore'):
        preds = head.predict(feats, data_samples, test_cfg=test_cfg)
    if isinstance(preds, tuple):
        preds = preds[0]

    pred = np.stack([p.keypoints[0, :, :2] for p in preds]).astype(np.float64)
    center = np.stack([s['input_center'] for s in samples])[:, None]
    scale = np.stack([s['input_scale'] for s in samples])[:, None]
    # TopdownPoseEstimator.add_pred_to_datasample: model-input frame -> image
    pred = pred / input_size * scale + center - 0.5 * scale
    bbox = np.stack([s['bbox'][0] for s in samples])
    size = np.max(bbox[:, 2:] - bbox[:, :2], axis=1)
    return dict(pred=pred,
                gt=np.stack([s['keypoints'][0, :, :2] for s in samples]).astype(np.float64),
                mask=np.stack([s['keypoints_visible'][0] for s in samples]) > 0.5,
                norm=np.stack([size, size], axis=1))


def floor_metrics(pp: dict[str, np.ndarray], thresholds=(0.05, 0.1, 0.2),
                  per_joint_thr: float = 0.1, joint_names=None) -> dict[str, float]:
    """PCK (MMPose's ``keypoint_pck_accuracy``: mean over joints of per-joint accuracy), EPE
    (image pixels) and per-joint PCK of :func:`perfect_predictions`' output."""
    from mmpose.evaluation.functional import keypoint_epe, keypoint_pck_accuracy
    pred, gt, mask, norm = pp['pred'], pp['gt'], pp['mask'], pp['norm']
    out: dict[str, float] = {}
    for thr in thresholds:
        out[f'PCK@{thr:g}'] = float(keypoint_pck_accuracy(pred, gt, mask, thr, norm)[1])
    out['EPE'] = float(keypoint_epe(pred, gt, mask))
    per_joint = keypoint_pck_accuracy(pred, gt, mask, per_joint_thr, norm)[0]
    for j, acc in enumerate(per_joint):
        name = joint_names[j] if joint_names else str(j)
        out[f'PCK@{per_joint_thr:g}/{name}'] = float(acc)
    return out
