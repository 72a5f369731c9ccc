"""Per-pixel classification targets for 2D keypoints (codec ``PixelClassLabel``).

Every heatmap pixel is a (K + 1)-way classification problem: "background" or one of the
K keypoints. The soft target is derived from the same un-normalised Gaussians that heatmap
regression uses, read as independent "this pixel is keypoint j" probabilities.
"""
import math
from typing import List, Optional, Tuple, Union

import numpy as np

from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

#: Default bound on the truncation error of the windowed encoding (see ``window``).
WINDOW_TOL = 1e-4
#: Floor applied to probabilities before taking logs in :meth:`PixelClassLabel.decode`.
_LOG_FLOOR = 1e-30
#: Largest float64 below 1: caps G so that log1p(-G) is finite.
_ONE_MINUS = 1.0 - 2.0**-52


@KEYPOINT_CODECS.register_module()
class PixelClassLabel(BaseKeypointCodec):
    r"""Represent keypoints as per-pixel class probabilities (background + K
    keypoints), for heads trained with a per-pixel (soft) cross-entropy.

    For one instance, keypoint :math:`j` is mapped to the heatmap space without
    rounding, :math:`\tilde x_j = x_j W / w`, :math:`\tilde y_j = y_j H / h`,
    where pixel :math:`(u, v)` has its centre at :math:`(u, v)`. With

    .. math::

        G_j(u, v) = \exp\left(-\frac{(u-\tilde x_j)^2 + (v-\tilde y_j)^2}
                              {2\sigma^2}\right)

    (:math:`G_j \equiv 0` for an invisible keypoint or one whose centre lies
    outside :math:`[-0.5, W-0.5) \times [-0.5, H-0.5)`), the soft target is

    .. math::

        P_0 = \prod_j (1 - G_j), \qquad
        P_j = (1 - P_0) \frac{G_j}{\sum_i G_i} \quad (P_j = 0
        \text{ where } \sum_i G_i = 0),

    so every pixel is a probability distribution over the K + 1 classes.
    ``target='hard'`` gives instead a one-hot label per pixel: the arg-max of
    :math:`[\tau, G_1, \dots, G_K]` (:math:`\tau` = ``bg_threshold``; index 0,
    i.e. background, wins ties).

    Each :math:`G_j` is evaluated only inside a square window of
    ``ceil(r * sigma)`` pixels around its centre (``r`` = ``window``) and is
    taken as 0 outside it, which makes encoding cost independent of the
    heatmap size. With the default ``window=None``, ``r`` is picked per call so
    that :math:`K \exp(-r^2/2) \le 10^{-4}`; since every target value moves by
    at most the sum of the truncated :math:`G_j` at that pixel, the windowed
    soft target is within 1e-4 of the exact formula above everywhere.

    Several instances (N > 1, i.e. bottom-up use; top-down passes N = 1) are
    merged per keypoint channel before the formula above:
    :math:`G_j = \max_n G_{n,j}`, as ``MSRAHeatmap`` does for its heatmaps.

    Decoding takes the arg-max pixel of each keypoint channel, refines it to
    sub-pixel accuracy by one Newton step on :math:`\log P_j` (2nd-order Taylor
    expansion on the 3x3 neighbourhood, as in DARK; exact for a Gaussian, and
    uses a shifted stencil at the border) and returns :math:`P_j` at the
    arg-max pixel as the score: a probability, not rescaled.

    Note:

        - instance number: N
        - keypoint number: K
        - keypoint dimension: D
        - image size: [w, h]
        - heatmap size: [W, H]

    Encoded:

        - heatmaps (np.ndarray): float32 per-pixel class probabilities in
            shape (K + 1, H, W), channel 0 = background, channel j + 1 =
            keypoint j; every pixel sums to 1. One-hot when ``target='hard'``
        - keypoint_weights (np.ndarray): float32 target weights in shape
            (N, K): 1 for encoded keypoints, 0 for invisible keypoints and
            keypoints outside the heatmap

    Args:
        input_size (tuple): Image size in [w, h]
        heatmap_size (tuple): Heatmap size in [W, H]
        sigma (float): The sigma of the Gaussians, in heatmap pixels
        target (str): ``'soft'`` (probabilities above) or ``'hard'`` (one-hot
            arg-max labels). Defaults to ``'soft'``
        bg_threshold (float): :math:`\tau`, the Gaussian value a keypoint
            must exceed to claim a pixel in ``'hard'`` mode. Defaults to 0.5
        window (float, optional): Window radius in units of sigma. ``None``
            (default) chooses :math:`r = \sqrt{2 \ln(K / 10^{-4})}`
            (4.91 for K = 17), which bounds the truncation error by 1e-4
        decode_refine (bool): Whether to refine decoded keypoints to
            sub-pixel accuracy. Defaults to ``True``
    """

    label_mapping_table = dict(keypoint_weights='keypoint_weights', )
    field_mapping_table = dict(heatmaps='heatmaps', )

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_size: Tuple[int, int],
                 sigma: float,
                 target: str = 'soft',
                 bg_threshold: float = 0.5,
                 window: Optional[float] = None,
                 decode_refine: bool = True) -> None:
        super().__init__()
        if target not in ('soft', 'hard'):
            raise ValueError(f'{self.__class__.__name__}: target must be '
                             f'"soft" or "hard", got {target!r}')
        if sigma <= 0:
            raise ValueError(f'sigma must be positive, got {sigma}')
        if window is not None and window <= 0:
            raise ValueError(f'window must be positive, got {window}')
        self.input_size = tuple(input_size)
        self.heatmap_size = tuple(heatmap_size)
        self.sigma = float(sigma)
        self.target = target
        self.bg_threshold = float(bg_threshold)
        self.window = window
        self.decode_refine = decode_refine
        W, H = self.heatmap_size
        w, h = self.input_size
        # heatmap coordinate = input coordinate * to_heatmap
        self._to_heatmap = np.array([W / w, H / h], dtype=np.float64)
        self.scale_factor = (np.array(self.input_size, dtype=np.float64) /
                             np.array(self.heatmap_size, dtype=np.float64))
        self._neg_inv_2s2 = -0.5 / (self.sigma * self.sigma)
        self._geometry_cache = {}
        self._d3 = np.arange(-1, 2)
        self._upper = np.array([W - 0.5, H - 0.5])

    # ------------------------------------------------------------------ #
    # encoding
    # ------------------------------------------------------------------ #
    def window_radius(self, num_keypoints: int) -> int:
        """Window half-size in heatmap pixels, ``ceil(r * sigma)``."""
        return self._geometry(num_keypoints)[0]

    def _geometry(self, K: int):
        """Per-K constants (cached): radius R, window sizes, aranges."""
        geo = self._geometry_cache.get(K)
        if geo is None:
            if self.window is not None:
                r = float(self.window)
            else:
                r = math.sqrt(2.0 * math.log(max(K, 1) / WINDOW_TOL))
            R = int(math.ceil(r * self.sigma - 1e-9))
            W, H = self.heatmap_size
            Lx, Ly = min(2 * R + 1, W), min(2 * R + 1, H)
            geo = (R, Lx, Ly, np.arange(Lx), np.arange(Ly),
                   np.arange(1, K + 1)[:, None, None] * (W * H))
            self._geometry_cache[K] = geo
        return geo

    def _start_max(self, Lx: int, Ly: int) -> np.ndarray:
        W, H = self.heatmap_size
        return np.array([W - Lx, H - Ly], dtype=np.int64)

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None) -> dict:
        """Encode keypoints into per-pixel class targets. The keypoint
        coordinates should be in the input image space.

        Args:
            keypoints (np.ndarray): Keypoint coordinates in shape (N, K, D)
            keypoints_visible (np.ndarray): Keypoint visibilities in shape
                (N, K); keypoints with visibility < 0.5 are not encoded

        Returns:
            dict:
            - heatmaps (np.ndarray): (K + 1, H, W) float32 class probabilities
                (channel 0 = background)
            - keypoint_weights (np.ndarray): (N, K) float32, 1 for encoded
                keypoints, 0 for invisible / outside ones
        """
        keypoints = np.asarray(keypoints)
        N, K = keypoints.shape[:2]
        M = N * K
        W, H = self.heatmap_size
        HW = H * W
        R, Lx, Ly, arx, ary, ch_offset = self._geometry(K)

        # heatmap-space centres (M, 2), not rounded
        c = keypoints[..., :2].reshape(M, 2) * self._to_heatmap
        # inside [-0.5, W - 0.5) x [-0.5, H - 0.5); NaN compares False
        valid = ((c >= -0.5) & (c < self._upper)).all(1)
        if keypoints_visible is not None:
            keypoints_visible = np.asarray(keypoints_visible)
            if keypoints_visible.ndim == 3:  # (N, K, 2): visibility, weight
                keypoints_visible = keypoints_visible[..., 0]
            valid &= keypoints_visible.reshape(M) >= 0.5
        keypoint_weights = valid.reshape(N, K).astype(np.float32)
        c = np.where(valid[:, None], c, 0.0)

        # windows of Lx x Ly pixels around round(c), shifted to lie inside the
        # grid; they contain every in-grid pixel within R px (per axis) of c
        start = np.rint(c).astype(np.int64)
        start -= R
        np.maximum(start, 0, out=start)
        np.minimum(start, self._start_max(Lx, Ly), out=start)
        cols = start[:, 0:1] + arx  # (M, Lx)
        rows = start[:, 1:2] + ary  # (M, Ly)
        dx = cols - c[:, 0:1]
        dy = rows - c[:, 1:2]
        dx *= dx
        dx *= self._neg_inv_2s2
        dy *= dy
        dy *= self._neg_inv_2s2
        gx = np.exp(dx, out=dx)
        # G < 1 strictly, so that log1p(-G) stays finite (1 - 2^-52 instead
        # of 1 changes P_0 by ~1e-16); zero for keypoints not encoded
        gx *= valid[:, None] * _ONE_MINUS
        gy = np.exp(dy, out=dy)

        if N == 1:
            # G_j on its own window: (K, Ly, Lx) at pixel indices `pix`
            G = gy[:, :, None] * gx[:, None, :]
            pix = (rows * W)[:, :, None] + cols[:, None, :]
            if self.target == 'hard':
                heatmaps = self._hard_sparse(G, pix + ch_offset, K)
            else:
                heatmaps = self._soft_sparse(G, pix, pix + ch_offset, K)
        else:
            # dense G (K, H*W): max over instances of the windowed Gaussians
            if N == 0:
                G = np.zeros((K, HW))
            else:
                dgx = np.zeros((M, W))
                dgy = np.zeros((M, H))
                np.put_along_axis(dgx, cols, gx, axis=1)
                np.put_along_axis(dgy, rows, gy, axis=1)
                G = (dgy[:, :, None] * dgx[:, None, :]).reshape(N, K, HW).max(0)
            if self.target == 'hard':
                heatmaps = self._hard_dense(G, K)
            else:
                heatmaps = self._soft_dense(G, K)

        return dict(
            heatmaps=heatmaps.reshape(K + 1, H, W),
            keypoint_weights=keypoint_weights)

    def _soft_sparse(self, G: np.ndarray, pix: np.ndarray, out_idx: np.ndarray,
                     K: int) -> np.ndarray:
        """Soft target from windowed Gaussians ``G`` (K, Ly, Lx) located at
        flat pixel indices ``pix``; ``out_idx`` = the same positions in the
        flattened (K + 1, H * W) output (channel j + 1). Overlapping windows
        are accumulated with ``np.bincount``."""
        HW = self.heatmap_size[0] * self.heatmap_size[1]
        f = pix.reshape(-1)
        g = G.reshape(-1)
        log1m = np.log1p(-g)
        P0 = np.exp(np.bincount(f, weights=log1m, minlength=HW))
        S = np.bincount(f, weights=g, minlength=HW)
        # ratio = (1 - P0) / S, 0 where no Gaussian reaches
        ratio = np.subtract(1.0, P0)
        np.divide(ratio, S, out=ratio, where=S > 0)
        out = np.zeros((K + 1, HW), dtype=np.float32)
        out[0] = P0
        G *= ratio[pix]
        np.put(out, out_idx, G)
        return out

    def _soft_dense(self, G: np.ndarray, K: int) -> np.ndarray:
        """Soft target from dense Gaussians G (K, H*W)."""
        P0 = np.prod(1.0 - G, axis=0)
        S = G.sum(0)
        ratio = np.divide(1.0 - P0, S, out=np.zeros_like(S), where=S > 0)
        out = np.empty((K + 1, G.shape[1]), dtype=np.float32)
        out[0] = P0
        np.multiply(G, ratio, out=out[1:])
        return out

    def _hard_dense(self, G: np.ndarray, K: int) -> np.ndarray:
        """One-hot arg-max of [tau, G_1..G_K] per pixel, G dense (K, H*W)."""
        scores = np.empty((K + 1, G.shape[1]))
        scores[0] = self.bg_threshold
        scores[1:] = G
        return self._one_hot(scores)

    def _hard_sparse(self, G: np.ndarray, out_idx: np.ndarray,
                     K: int) -> np.ndarray:
        """One-hot arg-max of [tau, G_1..G_K] per pixel, windowed G."""
        HW = self.heatmap_size[0] * self.heatmap_size[1]
        scores = np.zeros((K + 1, HW))
        scores[0] = self.bg_threshold
        np.put(scores, out_idx, G)
        return self._one_hot(scores)

    @staticmethod
    def _one_hot(scores: np.ndarray) -> np.ndarray:
        C, HW = scores.shape
        out = np.zeros((C, HW), dtype=np.float32)
        out[scores.argmax(0), np.arange(HW)] = 1.0
        return out

    # ------------------------------------------------------------------ #
    # decoding
    # ------------------------------------------------------------------ #
    def decode(self, encoded: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decode keypoints from per-pixel class probabilities. The decoded
        coordinates are in the input image space.

        Args:
            encoded (np.ndarray): Probabilities in shape (K + 1, H, W),
                channel 0 = background (e.g. softmax of the head's logits)

        Returns:
            tuple:
            - keypoints (np.ndarray): Decoded coordinates in shape (1, K, 2)
            - scores (np.ndarray): (1, K) probability of keypoint j at its
                arg-max pixel
        """
        keypoints, scores = self._decode_array(np.asarray(encoded)[None])
        return keypoints, scores

    def batch_decode(
        self, batch_encoded
    ) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Decode a batch of probabilities (B, K + 1, H, W) (torch.Tensor or
        np.ndarray) in one vectorised pass.

        Returns:
            tuple: lists (length B) of keypoints (1, K, 2) and scores (1, K)
        """
        if not isinstance(batch_encoded, np.ndarray):
            batch_encoded = batch_encoded.detach().float().cpu().numpy()
        keypoints, scores = self._decode_array(batch_encoded)
        return ([k[None] for k in keypoints], [s[None] for s in scores])

    def _decode_array(self,
                      probs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(B, K+1, H, W) -> keypoints (B, K, 2), scores (B, K)."""
        B, C, H, W = probs.shape
        K = C - 1
        P = probs[:, 1:].reshape(B * K, H * W)
        M = B * K
        m = np.arange(M)
        am = P.argmax(1)
        scores = P[m, am].astype(np.float32)
        x = am % W
        y = am // W
        locs = np.stack((x, y), axis=-1).astype(np.float64)

        if self.decode_refine and W >= 3 and H >= 3:
            locs[:, 0], locs[:, 1] = self._refine(P, x, y, W, H)

        locs[scores <= 0] = -1
        keypoints = (locs * self.scale_factor).astype(np.float32)
        return keypoints.reshape(B, K, 2), scores.reshape(B, K)

    def _refine(self, P: np.ndarray, x: np.ndarray, y: np.ndarray, W: int,
                H: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sub-pixel refinement of arg-max pixels (x, y) of the flattened
        maps P (M, H*W), on L = log P.

        - arg-max not on the border: one Newton step with the 3x3 finite
          difference gradient and Hessian of L (DARK); per axis 1-D Newton
          when the Hessian is not negative definite;
        - an axis where the arg-max is on the border: the two-point formula
          with the codec's sigma, ``x = (a + b) / 2 + sigma^2 (L_b - L_a) /
          (b - a)`` with b the inner neighbour of a, exact for a Gaussian.

        Offsets are limited to 1 px; an axis with a flat or convex profile
        is left unrefined.
        """
        M = P.shape[0]
        m = np.arange(M)
        # 3x3 stencil around the arg-max, shifted inside the grid
        sx = np.clip(x, 1, W - 2)
        sy = np.clip(y, 1, H - 2)
        idx = (sy[:, None] + self._d3) * W
        idx = (idx[:, :, None] + (sx[:, None] + self._d3)[:, None, :])
        patch = np.take_along_axis(P, idx.reshape(M, 9), axis=1)
        L = np.log(np.maximum(patch.astype(np.float64), _LOG_FLOOR))
        L = L.reshape(M, 3, 3)  # [row (y), col (x)]
        ix = x - sx + 1  # 1 when x is not on the border, else 0 or 2
        iy = y - sy + 1
        Lrow = L[m, iy, :]  # through the arg-max, along x
        Lcol = L[m, :, ix]  # along y
        s2 = self.sigma * self.sigma

        def axis(c, i, Lc):
            g = 0.5 * (Lc[:, 2] - Lc[:, 0])
            h = Lc[:, 2] - 2.0 * Lc[:, 1] + Lc[:, 0]
            inner = i == 1
            with np.errstate(divide='ignore', invalid='ignore'):
                newton = np.where(h < 0, -g / h, 0.0)
            # border: a = c, b = c -/+ 1 (inner neighbour, stencil column 1)
            sign = np.where(i == 0, 1.0, -1.0)
            la = np.where(i == 0, Lc[:, 0], Lc[:, 2])
            two_point = sign * (0.5 + s2 * (Lc[:, 1] - la))
            return np.where(inner, newton, two_point), g, h, inner

        ox, gx, hxx, in_x = axis(x, ix, Lrow)
        oy, gy, hyy, in_y = axis(y, iy, Lcol)
        # full 2-D Newton step where both axes are inner and the Hessian is
        # negative definite
        hxy = 0.25 * (L[:, 2, 2] - L[:, 2, 0] - L[:, 0, 2] + L[:, 0, 0])
        det = hxx * hyy - hxy * hxy
        full = in_x & in_y & (hxx < 0) & (det > 0)
        with np.errstate(divide='ignore', invalid='ignore'):
            ox = np.where(full, (hxy * gy - hyy * gx) / det, ox)
            oy = np.where(full, (hxy * gx - hxx * gy) / det, oy)
        ox = np.clip(np.nan_to_num(ox, nan=0.0, posinf=0.0, neginf=0.0), -1,
                     1)
        oy = np.clip(np.nan_to_num(oy, nan=0.0, posinf=0.0, neginf=0.0), -1,
                     1)
        return x + ox, y + oy

