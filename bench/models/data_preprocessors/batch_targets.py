"""Training targets for a whole batch, on the training device, with each codec's own math.

``GenerateTarget`` encodes one sample at a time in numpy (0.2-0.5 ms each here). A codec whose
formulation record has a batched encoder (:mod:`bench.formulations`: DARK's
``MSRAHeatmap(unbiased=True)``, ``PixelClassLabel``'s soft target) gets the whole batch at once
in torch; every other codec (stock biased ``MSRAHeatmap``, ``UDPHeatmap``, ``SimCCLabel``,
``RegressionLabel``...) is encoded per sample with its own ``encode``, exactly as
``GenerateTarget`` calls it, and packed into the fields and labels its mapping tables name, as
``PackPoseInputs`` does. :mod:`tests.test_batched_data` checks the torch paths against
``encode``.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.formulations import for_codec


def batch_encode(codec, keypoints: np.ndarray, visible: np.ndarray,
                 device: torch.device) -> dict:
    """Encode a batch. ``keypoints`` (B, K, 2) in the input frame, ``visible`` (B, K).

    Returns a dict with ``fields`` (name -> (B, ...) tensor, for ``gt_fields``), ``labels``
    (name -> (B, ...) tensor, ``gt_instance_labels``; instance axis of 1 per sample kept), and
    ``instances`` (name -> (B, ...) numpy, ``gt_instances``)."""
    batched = for_codec(type(codec).__name__).batch_encode
    encoded = batched(codec, keypoints, visible, device) if batched else None
    return encoded if encoded is not None else _per_sample(codec, keypoints, visible, device)


def _per_sample(codec, keypoints, visible, device) -> dict:
    fields, labels, instances = {}, {}, {}
    encoded = [codec.encode(kp[None], vis[None]) for kp, vis in zip(keypoints, visible)]
    for key in encoded[0]:
        values = [e[key] for e in encoded]
        if key in codec.field_mapping_table:
            fields[codec.field_mapping_table[key]] = torch.stack(
                [torch.from_numpy(np.ascontiguousarray(x)) for x in values]).to(device)
        elif key in codec.label_mapping_table:
            labels[codec.label_mapping_table[key]] = torch.stack(
                [torch.from_numpy(np.ascontiguousarray(x)) for x in values]).to(device)
        elif key in getattr(codec, 'instance_mapping_table', {}):
            instances[codec.instance_mapping_table[key]] = np.stack(values)
    return dict(fields=fields, labels=labels, instances=instances)
