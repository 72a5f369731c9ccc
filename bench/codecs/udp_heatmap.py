"""MMPose's ``UDPHeatmap`` with its Gaussian targets placed at the right pixel (codec
``UDPHeatmapExact``).

MMPose 1.3.2's ``generate_udp_gaussian_heatmaps`` rounds the window corner toward zero
(``(mu - radius).astype(np.int64)``) although it indexes the Gaussian patch from its centre
pixel ``gaussian_size // 2``: when 3 sigma is not an integer (sigma 1.5: 4.5), every keypoint
whose rounded centre lies within 3 sigma of the top or left border gets its peak one heatmap
pixel too far right / down. :mod:`tests.test_udp_codec` pins that bug.
"""
from itertools import product
from typing import Optional, Tuple

import numpy as np

from mmpose.codecs import UDPHeatmap
from mmpose.registry import KEYPOINT_CODECS


def generate_udp_gaussian_heatmaps_exact(
        heatmap_size: Tuple[int, int], keypoints: np.ndarray, keypoints_visible: np.ndarray,
        sigma: float) -> Tuple[np.ndarray, np.ndarray]:
    """``mmpose.codecs.utils.generate_udp_gaussian_heatmaps`` (MMPose 1.3.2), line for line,
    except where the Gaussian patch goes: its centre pixel ``c = gaussian_size // 2`` lands on
    ``mu = floor(keypoint + 0.5)``: the window starts at ``mu - c`` (MMPose: ``mu - 3 sigma``
    rounded toward zero) and ends, as MMPose's, before ``mu + 3 sigma + 1`` (here rounded down,
    as ``mu``). Where MMPose's corner was right the result is identical, bit for bit. The
    patch values, its asymmetric cut (MMPose's), the weights and the out-of-heatmap rule
    (``right < 0``, MMPose's) are unchanged.

    Args:
        heatmap_size (Tuple[int, int]): Heatmap size in [W, H]
        keypoints (np.ndarray): Keypoint coordinates (heatmap pixels) in shape (N, K, D)
        keypoints_visible (np.ndarray): Keypoint visibilities in shape (N, K)
        sigma (float): The sigma value of the Gaussian heatmap

    Returns:
        tuple:
        - heatmaps (np.ndarray): The generated heatmap in shape (K, H, W)
        - keypoint_weights (np.ndarray): The target weights in shape (N, K)
    """
    N, K, _ = keypoints.shape
    W, H = heatmap_size

    heatmaps = np.zeros((K, H, W), dtype=np.float32)
    keypoint_weights = keypoints_visible.copy()

    # 3-sigma rule
    radius = sigma * 3

    # xy grid
    gaussian_size = 2 * radius + 1
    x = np.arange(0, gaussian_size, 1, dtype=np.float32)
    y = x[:, None]
    # the patch's centre pixel (MMPose: x0 = y0 = gaussian_size // 2)
    c = int(gaussian_size // 2)

    for n, k in product(range(N), range(K)):
        # skip unlabled keypoints
        if keypoints_visible[n, k] < 0.5:
            continue

        # MMPose: mu = (kp + 0.5).astype(int64), left = (mu - radius).astype(int64),
        # right = (mu + radius + 1).astype(int64): rounded toward zero, and a left corner
        # that misses mu - c when 3 sigma has a fraction in (0, 0.5)
        mu = np.floor(keypoints[n, k] + 0.5).astype(np.int64)
        left, top = mu - c
        right, bottom = np.floor(mu + radius + 1).astype(np.int64)

        if left >= W or top >= H or right < 0 or bottom < 0:
            keypoint_weights[n, k] = 0
            continue

        mu_ac = keypoints[n, k]
        x0 = y0 = gaussian_size // 2
        x0 += mu_ac[0] - mu[0]
        y0 += mu_ac[1] - mu[1]
        gaussian = np.exp(-((x - x0)**2 + (y - y0)**2) / (2 * sigma**2))

        # valid range in gaussian
        g_x1 = max(0, -left)
        g_x2 = min(W, right) - left
        g_y1 = max(0, -top)
        g_y2 = min(H, bottom) - top

        # valid range in heatmap
        h_x1 = max(0, left)
        h_x2 = min(W, right)
        h_y1 = max(0, top)
        h_y2 = min(H, bottom)

        heatmap_region = heatmaps[k, h_y1:h_y2, h_x1:h_x2]
        gaussian_region = gaussian[g_y1:g_y2, g_x1:g_x2]

        _ = np.maximum(heatmap_region, gaussian_region, out=heatmap_region)

    return heatmaps, keypoint_weights


@KEYPOINT_CODECS.register_module()
class UDPHeatmapExact(UDPHeatmap):
    r"""MMPose's :class:`~mmpose.codecs.UDPHeatmap` (Unbiased Data Processing,
    Huang et al., CVPR 2020) with every Gaussian target peaking at the pixel
    nearest to its keypoint. See the paper: `The Devil is in the Details:
    Delving into Unbiased Data Processing for Human Pose Estimation`_.

    Only the encoding of ``heatmap_type='gaussian'`` differs from the parent's
    (:func:`generate_udp_gaussian_heatmaps_exact`): MMPose 1.3.2 rounds the
    top-left corner of each Gaussian window toward zero, so with a non-integer
    :math:`3\sigma` (the default :math:`\sigma = 1.5` of this project) a
    keypoint within :math:`3\sigma` of the top or left border is encoded one
    heatmap pixel too far right or down, and even a perfect network decodes it
    there (codec floor PCK@0.05 0.63 against 1.00 at :math:`\sigma = 1`).
    Here the window starts at the rounded-down corner, so the patch's centre
    pixel is :math:`\lfloor\tilde x + 0.5\rfloor` for every keypoint
    :math:`\tilde x = x (W - 1) / (w - 1)` in heatmap pixels. Wherever
    MMPose's corner is right (keypoints farther than :math:`3\sigma` from the
    top and left borders; everywhere in the heatmap when :math:`3\sigma` is an
    integer) the target is MMPose's, bit for bit. A :math:`3\sigma` whose
    fraction lies in :math:`(0, 0.5)` (e.g. :math:`\sigma = 1.1`) shifts
    MMPose's peaks by one pixel everywhere; this codec places them right there
    too. ``heatmap_type='combined'``, decoding (arg-max and UDP's DARK step),
    weights and every argument are the parent's.

    Note:

        - instance number: N
        - keypoint number: K
        - keypoint dimension: D
        - image size: [w, h]
        - heatmap size: [W, H]

    Encoded:

        - heatmaps (np.ndarray): The generated heatmap in shape (C_out, H, W)
            where [W, H] is the `heatmap_size`: K Gaussian maps (peak 1, cut to
            a :math:`(2 \cdot 3\sigma + 1)`-pixel window) when
            ``heatmap_type=='gaussian'``; K*3 maps (x_offset, y_offset and
            class label, MMPose's) when ``heatmap_type=='combined'``
        - keypoint_weights (np.ndarray): The target weights in shape (N, K):
            the visibility, 0 for a keypoint whose window misses the heatmap

    Args:
        input_size (tuple): Image size in [w, h]
        heatmap_size (tuple): Heatmap size in [W, H]
        heatmap_type (str): The heatmap type to encode the keypoints. Options
            are ``'gaussian'`` (fixed here) and ``'combined'`` (MMPose's).
            Defaults to ``'gaussian'``
        sigma (float): The sigma value of the Gaussian heatmap when
            ``heatmap_type=='gaussian'``. Defaults to 2.0
        radius_factor (float): The radius factor of the binary label
            map when ``heatmap_type=='combined'``. Defaults to 0.0546875
        blur_kernel_size (int): The Gaussian blur kernel size of the heatmap
            modulation in DarkPose (decoding). Defaults to 11

    .. _`The Devil is in the Details: Delving into Unbiased Data Processing for
    Human Pose Estimation`: https://arxiv.org/abs/1911.07524
    """

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None) -> dict:
        """Encode keypoints (input image space, (1, K, D)) into heatmaps, as
        :meth:`UDPHeatmap.encode` with the corrected Gaussian placement."""
        if self.heatmap_type != 'gaussian':
            return super().encode(keypoints, keypoints_visible)
        assert keypoints.shape[0] == 1, (
            f'{self.__class__.__name__} only support single-instance '
            'keypoint encoding')

        if keypoints_visible is None:
            keypoints_visible = np.ones(keypoints.shape[:2], dtype=np.float32)

        heatmaps, keypoint_weights = generate_udp_gaussian_heatmaps_exact(
            heatmap_size=self.heatmap_size,
            keypoints=keypoints / self.scale_factor,
            keypoints_visible=keypoints_visible,
            sigma=self.sigma)
        return dict(heatmaps=heatmaps, keypoint_weights=keypoint_weights)
