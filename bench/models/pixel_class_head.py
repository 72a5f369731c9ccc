"""Top-down head predicting per-pixel (K + 1)-class logits."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmpose.evaluation.functional import pose_pck_accuracy
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import (ConfigType, Features, OptConfigType,
                                 OptSampleList, Predictions)

OptIntSeq = Optional[Sequence[int]]


@MODELS.register_module()
class PixelClassHead(HeatmapHead):
    """Per-pixel classification head: the :class:`HeatmapHead` trunk (same
    deconv / conv / final-layer options) with a final layer emitting K + 1
    logits per pixel, channel 0 = background, channel j + 1 = keypoint j.

    Meant to be used with :class:`bench.codecs.PixelClassLabel` and one of the
    losses in :mod:`bench.models.losses`; a config differs from a
    ``HeatmapHead`` baseline only in head type, loss and codec.

    - :meth:`forward` returns logits (N, K + 1, H, W).
    - :meth:`predict` applies a softmax over channels. With
      ``test_cfg['flip_test']`` the probabilities of the flipped image are
      flipped horizontally, the keypoint channels are permuted with the
      dataset's ``flip_indices`` (background stays channel 0), optionally
      shifted by one pixel (``test_cfg['shift_heatmap']``, as in
      ``HeatmapHead``), and averaged with the original probabilities. The
      probabilities are decoded by the codec. With
      ``test_cfg['output_heatmaps']`` the (K + 1, H, W) probability maps are
      also returned in ``pred_fields.heatmaps``.
    - :meth:`loss` returns ``loss_kpt``, ``acc_pose`` (PCK on the K keypoint
      probability channels, as ``HeatmapHead``) and, when the loss module
      exposes ``last_parts``, ``bg_part`` / ``fg_part`` (the background and
      positive pixels' contributions to the loss) and ``bg_kept`` (share of
      background pixels kept by hard negative mining); named without "loss"
      so MMEngine logs them without adding them to the total loss.

    Args:
        in_channels (int | Sequence[int]): Number of input channels
        out_channels (int): Number of keypoints K (the head emits K + 1
            channels)
        deconv_out_channels, deconv_kernel_sizes, conv_out_channels,
        conv_kernel_sizes, final_layer, init_cfg: see :class:`HeatmapHead`.
            ``final_layer`` must not be None
        loss (Config): Config of the loss. Defaults to
            ``dict(type='PixelCrossEntropyLoss')``
        decoder (Config, optional): Codec config, normally
            ``dict(type='PixelClassLabel', ...)``
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 out_channels: int,
                 deconv_out_channels: OptIntSeq = (256, 256, 256),
                 deconv_kernel_sizes: OptIntSeq = (4, 4, 4),
                 conv_out_channels: OptIntSeq = None,
                 conv_kernel_sizes: OptIntSeq = None,
                 final_layer: dict = dict(kernel_size=1),
                 loss: ConfigType = dict(type='PixelCrossEntropyLoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        if final_layer is None:
            raise ValueError(f'{self.__class__.__name__} needs a final layer '
                             'to emit K + 1 channels')
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels + 1,
            deconv_out_channels=deconv_out_channels,
            deconv_kernel_sizes=deconv_kernel_sizes,
            conv_out_channels=conv_out_channels,
            conv_kernel_sizes=conv_kernel_sizes,
            final_layer=final_layer,
            loss=loss,
            decoder=decoder,
            init_cfg=init_cfg)
        self.num_keypoints = out_channels
        self.out_channels = out_channels

    @staticmethod
    def flip_probs(probs: Tensor,
                   flip_indices: Sequence[int],
                   shift_heatmap: bool = False) -> Tensor:
        """Map per-pixel class maps (B, K + 1, H, W) predicted on a
        horizontally flipped image back to the original image: flip the
        width axis, permute keypoint channels 1..K by ``flip_indices`` and
        keep background (channel 0) in place; optionally shift one pixel to
        the right (as ``flip_heatmaps(shift_heatmap=True)``)."""
        C = probs.shape[1]
        if len(flip_indices) != C - 1:
            raise ValueError(f'flip_indices has {len(flip_indices)} entries, '
                             f'expected {C - 1}')
        index = torch.tensor([0] + [1 + int(i) for i in flip_indices],
                             device=probs.device)
        flipped = probs.flip(-1).index_select(1, index)
        if shift_heatmap:
            flipped[..., 1:] = flipped[..., :-1].clone()
        return flipped

    def predict(self,
                feats: Features,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Predict keypoints from features.

        Args:
            feats (Tuple[Tensor] | List[Tuple[Tensor]]): The multi-stage
                features (or [original, flipped] features with flip test)
            batch_data_samples (List[:obj:`PoseDataSample`]): The batch
                data samples
            test_cfg (dict): ``flip_test`` (bool), ``flip_mode`` (only
                ``'heatmap'``), ``shift_heatmap`` (bool), ``output_heatmaps``
                (bool). Defaults to {}

        Returns:
            Union[InstanceList | Tuple[InstanceList | PixelDataList]]: the
            decoded instances (``keypoints`` (1, K, 2), ``keypoint_scores``
            (1, K)) and, with ``output_heatmaps``, ``PixelData(heatmaps=...)``
            holding the (K + 1, H, W) probabilities.
        """
        if test_cfg.get('flip_test', False):
            assert isinstance(feats, list) and len(feats) == 2
            flip_mode = test_cfg.get('flip_mode', 'heatmap')
            if flip_mode != 'heatmap':
                raise ValueError(f'{self.__class__.__name__} supports only '
                                 f'flip_mode="heatmap", got {flip_mode!r}')
            flip_indices = batch_data_samples[0].metainfo['flip_indices']
            _feats, _feats_flip = feats
            probs = self.forward(_feats).float().softmax(dim=1)
            probs_flip = self.flip_probs(
                self.forward(_feats_flip).float().softmax(dim=1),
                flip_indices=flip_indices,
                shift_heatmap=test_cfg.get('shift_heatmap', False))
            batch_probs = (probs + probs_flip) * 0.5
        else:
            batch_probs = self.forward(feats).float().softmax(dim=1)

        preds = self.decode(batch_probs)

        if test_cfg.get('output_heatmaps', False):
            pred_fields = [
                PixelData(heatmaps=hm) for hm in batch_probs.detach()
            ]
            return preds, pred_fields
        return preds

    def decode(self, batch_outputs: Tensor) -> list:
        """Decode (B, K + 1, H, W) probabilities into one ``InstanceData`` per sample:
        ``keypoints`` (1, K, 2), ``keypoint_scores`` (1, K) (the codec's score: the
        recovered Gaussian's peak :math:`G_j`) and, when the codec gives it
        (``decode_with_probs``), ``keypoint_probs`` (1, K): the class probability
        :math:`P_j` at the same pixel, kept as a second score."""
        if not hasattr(self.decoder, 'decode_with_probs'):
            return super().decode(batch_outputs)
        keypoints, scores, probs = self.decoder.decode_with_probs(batch_outputs)
        return [InstanceData(keypoints=k[None], keypoint_scores=s[None],
                             keypoint_probs=p[None])
                for k, s, p in zip(keypoints, scores, probs)]

    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Calculate losses from a batch of inputs and data samples.

        Returns:
            dict: ``loss_kpt``, ``acc_pose`` (if ``train_cfg['compute_acc']``,
            default True) and ``bg_part`` / ``fg_part`` / ``bg_kept`` when the
            loss module provides them.
        """
        logits = self.forward(feats)
        gt = torch.stack([d.gt_fields.heatmaps for d in batch_data_samples])
        keypoint_weights = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ])

        losses = dict()
        losses.update(loss_kpt=self.loss_module(logits, gt, keypoint_weights))

        parts = getattr(self.loss_module, 'last_parts', None)
        if parts:
            losses.update(bg_part=parts['bg'], fg_part=parts['fg'])
            if 'bg_kept' in parts:
                losses.update(bg_kept=parts['bg_kept'])

        if train_cfg.get('compute_acc', True):
            probs = logits.detach().float().softmax(dim=1)[:, 1:]
            _, avg_acc, _ = pose_pck_accuracy(
                output=to_numpy(probs),
                target=to_numpy(gt[:, 1:]),
                mask=to_numpy(keypoint_weights) > 0)
            losses.update(
                acc_pose=torch.tensor(avg_acc, device=gt.device))

        return losses
