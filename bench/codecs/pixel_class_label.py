"""Per-pixel classification targets for 2D keypoints (codec ``PixelClassLabel``).

Every heatmap pixel is a (K + 1)-way classification problem: "background" or one of the
K keypoints. The soft target is derived from the same un-normalised Gaussians that heatmap
regression uses, read as independent "this pixel is keypoint j" probabilities.
"""
import math
from types import SimpleNamespace
from typing import List, Optional, Tuple

import numpy as np

from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

from bench.codecs import pixel_class_solver as solver

#: Bound on the truncation error of the windowed encoding with ``window=None``.
WINDOW_TOL = 1e-4


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

    (:math:`G_j \equiv 0` for an invisible keypoint, visibility < 0.5, or one
    whose centre lies outside :math:`[-0.5, W-0.5) \times [-0.5, H-0.5)`),
    the soft target is

    .. math::

        P_0 = \prod_j (1 - G_j), \qquad
        P_j = (1 - P_0) \frac{G_j}{\sum_i G_i} \quad (P_j = 0
        \text{ where } \sum_i G_i = 0),

    so every pixel holds a probability distribution over the K + 1 classes.
    ``target='hard'`` gives instead a one-hot label per pixel: the arg-max of
    :math:`[\tau, G_1, \dots, G_K]` (:math:`\tau` = ``bg_threshold``;
    background wins ties).

    Each :math:`G_j` is evaluated only on a square window of half-size
    :math:`R = \lceil r\sigma - 0.5 \rceil` pixels around the pixel nearest to
    its centre (shifted inside the heatmap at the borders), so that every
    pixel nearer than :math:`r\sigma` (per axis) to the centre is computed, and
    is taken as 0 elsewhere; the cost does not depend on the heatmap size.
    With the default ``window=None``, :math:`r = \sqrt{2 \ln(K / 10^{-4})}`
    (4.91 for K = 17): every target value moves by at most the sum of the
    truncated :math:`G_j` at that pixel, each below :math:`\exp(-r^2/2)`, so
    the windowed target is within 1e-4 of the exact formula everywhere, for
    any pose.

    Several instances (N > 1, bottom-up use; top-down passes N = 1) are merged
    per keypoint before the formula above: :math:`G_j = \max_n G_{n,j}`, as
    ``MSRAHeatmap`` merges its heatmaps.

    Decoding first inverts the mixture exactly. Per pixel, the ratios
    :math:`r_j = P_j / \sum_k P_k = G_j / S` are known and
    :math:`S = \sum_k G_k` is the one unknown: it is the root :math:`T` of
    :math:`\prod_k (1 - r_k T) = P_0` on :math:`[0, 1 / \max_k r_k)`, where
    the left side falls monotonically from 1 to 0 (safeguarded Newton
    iterations on its logarithm, in float64). Then :math:`G_j = r_j T`. On an
    exact target this recovers every Gaussian, however many keypoints share a
    pixel; refining on :math:`P_j` instead would push neighbouring keypoints
    apart, since they share the pixel's mass. On a network's softmax, which
    is no exact mixture, the same steps give the Gaussians that best explain
    it pixel by pixel, clamped to [0, 1] (never NaN or inf).

    Each keypoint is then the arg-max pixel of its :math:`G_j`, refined on
    :math:`\log G_j` (``decode_refine``): one Newton step with the 3x3 finite
    difference gradient and Hessian (DARK's second-order Taylor step, exact
    for a Gaussian) and, on an axis where the arg-max is a border pixel, the
    two-point formula with the codec's sigma. Offsets are limited to 1 pixel.
    The Gaussians are solved only where decoding reads them (the pixels
    that can hold a map's maximum, and the refinement's stencil: see
    :meth:`local_gaussians`), with the same result as on the whole map.

    The score is :math:`G_j` at the arg-max pixel: the recovered Gaussian's
    peak, the analogue of a regression heatmap's maximum. :math:`P_j` there
    (a probability, which keypoints crowding one pixel share, so a
    perfectly predicted keypoint next to others scores well below 1) is the
    second score, from :meth:`decode_with_probs`. With
    ``decode_exact=False`` the score is :math:`P_j`.

    Note:

        - instance number: N
        - keypoint number: K
        - keypoint dimension: D
        - image size: [w, h]
        - heatmap size: [W, H]

    Encoded:

        - heatmaps (np.ndarray): float32 per-pixel class probabilities in
            shape (K + 1, H, W), channel 0 = background, channel j + 1 =
            keypoint j; every pixel sums to 1. One-hot if ``target='hard'``
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
            must exceed to claim a pixel with ``target='hard'`` (it should be
            well above the 1e-4 truncation level). Defaults to 0.5
        window (float, optional): ``r``, the window radius in units of sigma.
            ``None`` (default) derives it from K so that the truncation error
            is at most 1e-4
        decode_refine (bool): Whether to refine decoded keypoints to
            sub-pixel accuracy. Defaults to ``True``
        decode_exact (bool): Whether to recover the Gaussians :math:`G_j`
            from the probabilities before the arg-max and the refinement
            (above). ``False`` decodes :math:`P_j` itself, as versions before
            0.2 did (biased where keypoints crowd). Defaults to ``True``
    """

    label_mapping_table = dict(keypoint_weights='keypoint_weights', )
    #: Largest float32 below 1: caps G so that log1p(-G) stays finite.
    G_MAX = np.float32(1.0 - 2.0**-24)
    field_mapping_table = dict(heatmaps='heatmaps', )

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_size: Tuple[int, int],
                 sigma: float,
                 target: str = 'soft',
                 bg_threshold: float = 0.5,
                 window: Optional[float] = None,
                 decode_refine: bool = True,
                 decode_exact: bool = True) -> None:
        super().__init__()
        if target not in ('soft', 'hard'):
            raise ValueError(f'{self.__class__.__name__}: target must be '
                             f'"soft" or "hard", got {target!r}')
        if sigma <= 0:
            raise ValueError(f'sigma must be positive, got {sigma}')
        if target == 'hard' and not 0 < bg_threshold:
            raise ValueError('bg_threshold must be positive, got '
                             f'{bg_threshold}')
        if window is not None and window <= 0:
            raise ValueError(f'window must be positive, got {window}')
        self.input_size = tuple(input_size)
        self.heatmap_size = tuple(int(s) for s in heatmap_size)
        self.sigma = float(sigma)
        self.target = target
        self.bg_threshold = float(bg_threshold)
        self.window = window
        self.decode_refine = decode_refine
        self.decode_exact = decode_exact

        W, H = self.heatmap_size
        w, h = self.input_size
        # heatmap coordinate = input coordinate * _to_heatmap
        self._to_heatmap = np.array([W / w, H / h], dtype=np.float64)
        self.scale_factor = np.array([w / W, h / H], dtype=np.float64)
        self._upper = np.array([W - 0.5, H - 0.5])
        self.neg_inv_2s2 = -0.5 / (self.sigma * self.sigma)
        self._geometry_cache = {}
        # decoding constants: 3x3 stencil offsets in a flattened map, and the
        # positions of the x / y profiles through a stencil pixel
        d = np.arange(-1, 2)
        self._off9 = (d[:, None] * W + d[None, :]).reshape(1, 9)
        self._smax = np.array([W - 2, H - 2])

    def __getstate__(self) -> dict:
        # the cached window views alias small buffers; pickling / deep
        # copying would materialise them, so they are rebuilt on demand
        state = self.__dict__.copy()
        state['_geometry_cache'] = {}
        return state

    # ------------------------------------------------------------------ #
    # encoding
    # ------------------------------------------------------------------ #
    def window_radius(self, num_keypoints: int) -> int:
        """Window half-size R in heatmap pixels (windows are (2R+1)^2 pixels,
        cropped to the heatmap size)."""
        return self._geometry(num_keypoints).R

    def _geometry(self, K: int) -> SimpleNamespace:
        """Constants for K keypoints, cached: window sizes, and strided
        "window views" that pick a window at (y0, x0) with fancy indexing."""
        geo = self._geometry_cache.get(K)
        if geo is not None:
            return geo
        if self.window is not None:
            r = float(self.window)
        else:
            r = math.sqrt(2.0 * math.log(max(K, 1) / WINDOW_TOL))
        R = max(int(math.ceil(r * self.sigma - 0.5 - 1e-9)), 0)
        W, H = self.heatmap_size
        HW = W * H
        Lx, Ly = min(2 * R + 1, W), min(2 * R + 1, H)
        nX, nY = W - Lx + 1, H - Ly + 1
        grid = np.arange(HW, dtype=np.intp)
        isz = grid.itemsize
        geo = SimpleNamespace(
            R=R,
            Lx=Lx,
            Ly=Ly,
            nX=nX,
            nY=nY,
            joint=Lx == Ly,
            ar=np.arange(max(Lx, Ly)),
            start_max=np.array([W - Lx, H - Ly], dtype=np.intp),
            arK=np.arange(K),
            # flat pixel index of each window: pix_view[y0, x0] (Ly, Lx)
            pix_view=np.ndarray((nY, nX, Ly, Lx), np.intp, grid, 0,
                                (W * isz, isz, W * isz, isz)),
            # strides of window views on (H, W) float64 / float32 maps
            st64=(W * 8, 8, W * 8, 8),
            st32=(HW * 4, W * 4, 4, W * 4, 4),
            st64k=(HW * 8, W * 8, 8, W * 8, 8),
        )
        geo.grid = grid  # keep the buffer of pix_view alive
        self._geometry_cache[K] = geo
        return geo

    def windows(self, keypoints: np.ndarray,
                keypoints_visible: Optional[np.ndarray] = None) -> SimpleNamespace:
        """Where :meth:`encode` evaluates each keypoint's Gaussian (a batched encoder on
        another device draws the same windows from it).

        Args:
            keypoints (np.ndarray): (N, K, D) in the input image space
            keypoints_visible (np.ndarray, optional): (N, K) or (N, K, 2)

        Returns:
            SimpleNamespace:
            - centres (np.ndarray): (N * K, 2) float64 heatmap-space centres, not rounded (0
                for keypoints not encoded)
            - valid (np.ndarray): (N * K,) bool, encoded (visible and inside the heatmap)
            - starts (np.ndarray): (N * K, 2) window origins (x0, y0), inside the grid
            - Lx, Ly (int): window sizes; R (int): window half-size
        """
        keypoints = np.asarray(keypoints)
        N, K = keypoints.shape[:2]
        M = N * K
        geo = self._geometry(K)
        # heatmap-space centres (M, 2), not rounded
        c = keypoints[..., :2].reshape(M, 2) * self._to_heatmap
        # inside [-0.5, W - 0.5) x [-0.5, H - 0.5); NaN compares False
        inside = (c >= -0.5) & (c < self._upper)
        valid = inside[:, 0] & inside[:, 1]
        if keypoints_visible is not None:
            keypoints_visible = np.asarray(keypoints_visible)
            if keypoints_visible.ndim == 3:  # (N, K, 2): visibility, weight
                keypoints_visible = keypoints_visible[..., 0]
            valid &= keypoints_visible.reshape(M) >= 0.5
        c[~valid] = 0.0  # NaN / out-of-range centres: any in-grid window
        # window origins (M, 2): floor(c + 0.5) - R, shifted inside the grid
        # (truncation toward 0 of negative values is undone by the clipping)
        start = (c + (0.5 - geo.R)).astype(np.intp)
        np.maximum(start, 0, out=start)
        np.minimum(start, geo.start_max, out=start)
        return SimpleNamespace(centres=c, valid=valid, starts=start, Lx=geo.Lx, Ly=geo.Ly,
                               R=geo.R)

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
        W, H = self.heatmap_size
        win = self.windows(keypoints, keypoints_visible)
        geo = self._geometry(K)
        c, valid, start = win.centres, win.valid, win.starts
        keypoint_weights = valid.reshape(N, K).astype(np.float32)

        # separable 1-D Gaussians on the windows, gx (M, Lx), gy (M, Ly), in
        # float32 (as the 2-D products)
        o = start - c
        if geo.joint:
            d = o[:, :, None] + geo.ar
            d *= d
            d *= self.neg_inv_2s2
            g = np.exp(d, dtype=np.float32)
            gx, gy = g[:, 0], g[:, 1]
        else:
            dx = o[:, 0:1] + geo.ar[:geo.Lx]
            dy = o[:, 1:2] + geo.ar[:geo.Ly]
            gx = np.exp(dx * dx * self.neg_inv_2s2, dtype=np.float32)
            gy = np.exp(dy * dy * self.neg_inv_2s2, dtype=np.float32)
        # zero for keypoints not encoded; G < 1 strictly so that log1p(-G)
        # is finite (P_0 >= 6e-8 instead of 0 at a keypoint's centre)
        gx *= (valid * self.G_MAX)[:, None]

        x0 = start[:, 0]
        y0 = start[:, 1]
        if N == 1:
            G = np.einsum('ki,kj->kij', gy, gx)  # (K, Ly, Lx)
            if self.target == 'hard':
                heatmaps = self._hard_sparse(G, x0, y0, geo, K)
            else:
                heatmaps = self._soft_sparse(G, gx, gy, x0, y0, geo, K)
        else:
            G = self._dense(gx, gy, x0, y0, geo, N, K)
            if self.target == 'hard':
                heatmaps = self._hard_dense(G)
            else:
                heatmaps = self._soft_dense(G)

        return dict(
            heatmaps=heatmaps.reshape(K + 1, H, W),
            keypoint_weights=keypoint_weights)

    def _soft_sparse(self, G: np.ndarray, gx: np.ndarray, gy: np.ndarray,
                     x0: np.ndarray, y0: np.ndarray, geo: SimpleNamespace,
                     K: int) -> np.ndarray:
        """Soft target from windowed Gaussians G = gy (x) gx (K, Ly, Lx) with
        window origins (x0, y0). log P_0 accumulates overlapping windows with
        ``np.bincount`` and S = sum_j G_j is a matrix product of the
        zero-padded 1-D Gaussians (both in float64); windows are read /
        written through strided views."""
        W, H = self.heatmap_size
        HW = W * H
        pix = geo.pix_view[y0, x0].reshape(-1)
        P0 = np.exp(np.bincount(pix, np.log1p(-G.reshape(-1)), HW))
        # S = sum_j gy_j(v) gx_j(u) over the windows
        dgx = np.zeros((K, W))
        dgy = np.zeros((K, H))
        np.ndarray((K, geo.nX, geo.Lx), np.float64, dgx, 0,
                   (W * 8, 8, 8))[geo.arK, x0] = gx
        np.ndarray((K, geo.nY, geo.Ly), np.float64, dgy, 0,
                   (H * 8, 8, 8))[geo.arK, y0] = gy
        S = np.matmul(dgy.T, dgx).reshape(HW)
        # ratio = (1 - P0) / S, float32; 0 where no Gaussian reaches
        np.maximum(S, 1e-30, out=S)
        ratio = np.divide(np.subtract(1.0, P0), S, dtype=np.float32)
        G *= np.ndarray((geo.nY, geo.nX, geo.Ly, geo.Lx), np.float32, ratio,
                        0, geo.st32[1:])[y0, x0]
        out = np.zeros((K + 1, H, W), dtype=np.float32)
        out[0] = P0.reshape(H, W)
        np.ndarray((K, geo.nY, geo.nX, geo.Ly, geo.Lx), np.float32, out,
                   HW * 4, geo.st32)[geo.arK, y0, x0] = G
        return out

    def _dense(self, gx: np.ndarray, gy: np.ndarray, x0: np.ndarray,
               y0: np.ndarray, geo: SimpleNamespace, N: int,
               K: int) -> np.ndarray:
        """Dense G (K, H, W): per keypoint, the max over instances of the
        windowed Gaussians."""
        W, H = self.heatmap_size
        M = N * K
        if M == 0:
            return np.zeros((K, H, W))
        dgx = np.zeros((M, W))
        dgy = np.zeros((M, H))
        m = np.arange(M)
        np.ndarray((M, geo.nX, geo.Lx), np.float64, dgx, 0,
                   (W * 8, 8, 8))[m, x0] = gx
        np.ndarray((M, geo.nY, geo.Ly), np.float64, dgy, 0,
                   (H * 8, 8, 8))[m, y0] = gy
        G = dgy[:, :, None] * dgx[:, None, :]
        return G.reshape(N, K, H, W).max(0)

    @staticmethod
    def _soft_dense(G: np.ndarray) -> np.ndarray:
        """Soft target from dense Gaussians G (K, H, W)."""
        K = G.shape[0]
        P0 = np.prod(1.0 - G, axis=0)
        S = G.sum(0)
        ratio = 1.0 - P0
        np.divide(ratio, S, out=ratio, where=S > 0)
        out = np.empty((K + 1, ) + G.shape[1:], dtype=np.float32)
        out[0] = P0
        np.multiply(G, ratio, out=out[1:], casting='same_kind')
        return out

    def _hard_sparse(self, G: np.ndarray, x0: np.ndarray, y0: np.ndarray,
                     geo: SimpleNamespace, K: int) -> np.ndarray:
        """One-hot arg-max of [tau, G_1..G_K] per pixel, windowed G."""
        k, r, q = np.nonzero(G > self.bg_threshold)
        pix = geo.pix_view[y0[k], x0[k], r, q]
        return self._one_hot(G[k, r, q], k, pix, K)

    def _hard_dense(self, G: np.ndarray) -> np.ndarray:
        """One-hot arg-max of [tau, G_1..G_K] per pixel, dense G (K, H, W)."""
        K = G.shape[0]
        k, v, u = np.nonzero(G > self.bg_threshold)
        return self._one_hot(G[k, v, u], k, v * self.heatmap_size[0] + u, K)

    def _one_hot(self, vals: np.ndarray, k: np.ndarray, pix: np.ndarray,
                 K: int) -> np.ndarray:
        """One-hot labels (K + 1, H, W) from the candidate entries (value,
        keypoint, flat pixel) with G > tau: per pixel the largest value wins
        (lowest keypoint index on ties); pixels without a candidate are
        background."""
        W, H = self.heatmap_size
        out = np.zeros((K + 1, H * W), dtype=np.float32)
        out[0] = 1.0
        if pix.size:
            order = np.lexsort((k, -vals, pix))
            ps = pix[order]
            first = np.ones(ps.size, dtype=bool)
            np.not_equal(ps[1:], ps[:-1], out=first[1:])
            sel = order[first]
            out[0, pix[sel]] = 0.0
            out[1 + k[sel], pix[sel]] = 1.0
        return out

    # ------------------------------------------------------------------ #
    # decoding
    # ------------------------------------------------------------------ #
    def decode(self, encoded: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decode keypoints from per-pixel class probabilities. The decoded
        coordinates are in the input image space.

        Args:
            encoded (np.ndarray): Probabilities in shape (K + 1, H, W),
                channel 0 = background (e.g. the softmax of the logits)

        Returns:
            tuple:
            - keypoints (np.ndarray): Decoded coordinates in shape (1, K, 2)
            - scores (np.ndarray): (1, K), the recovered Gaussian
                :math:`G_j` at the decoded pixel (:math:`P_j` with
                ``decode_exact=False``)
        """
        return self._decode_array(np.asarray(encoded)[None])

    def batch_decode(self,
                     batch_encoded) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Decode a batch of probabilities (B, K + 1, H, W), a torch.Tensor
        or np.ndarray, in one vectorised pass.

        Returns:
            tuple: lists (length B) of keypoints (1, K, 2) and scores (1, K)
        """
        if not isinstance(batch_encoded, np.ndarray):
            batch_encoded = batch_encoded.detach().float().cpu().numpy()
        keypoints, scores = self._decode_array(batch_encoded)
        return list(keypoints[:, None]), list(scores[:, None])

    def decode_with_probs(self, batch_encoded) -> Tuple[np.ndarray, ...]:
        """Decode a batch (B, K + 1, H, W), a torch.Tensor or np.ndarray, and keep both
        scores.

        Returns:
            tuple:
            - keypoints (np.ndarray): (B, K, 2) in the input image space
            - scores (np.ndarray): (B, K), the recovered Gaussian's value
                :math:`G_j` at the decoded pixel (:math:`P_j` with
                ``decode_exact=False``)
            - probs (np.ndarray): (B, K), the class probability :math:`P_j`
                at the same pixel
        """
        if not isinstance(batch_encoded, np.ndarray):
            batch_encoded = batch_encoded.detach().float().cpu().numpy()
        return self._decode_array(batch_encoded, with_probs=True)

    def _decode_array(self, probs: np.ndarray, with_probs: bool = False):
        """(B, K+1, H, W) -> keypoints (B, K, 2), scores (B, K) [, P_j (B, K)]."""
        B, C, H, W = probs.shape
        K = C - 1
        M = B * K
        m = np.arange(M)
        refine = self.decode_refine and W >= 3 and H >= 3 and M > 0
        if self.decode_exact and M > 0 and H >= 3 and W >= 3:
            am, patch = self.exact_peaks(probs)
            y, x = np.divmod(am, W)
            i = np.stack((x - np.clip(x, 1, W - 2), y - np.clip(y, 1, H - 2)), -1) + 1
            scores = patch[m, i[:, 1] * 3 + i[:, 0]]
            patch = patch if refine else None
        else:  # no exact decoding, or maps too small for a stencil: the whole map
            P = probs[:, 1:].reshape(M, H * W)
            maps = recover_gaussians(probs).reshape(M, H * W) if self.decode_exact else P
            am = maps.argmax(1)
            scores = maps[m, am]
            y, x = np.divmod(am, W)
            patch = self._patch(maps, m, x, y) if refine else None
        if refine:
            locs = self._refine(patch, x, y, scores)
        else:
            locs = np.stack((x, y), axis=-1).astype(np.float64)
        # P_j at the decoded pixel, read in place (probs[:, 1:] is not contiguous)
        peak_probs = probs.reshape(B, C, H * W)[m // K, m % K + 1, am]
        locs[peak_probs <= 0] = -1
        keypoints = (locs * self.scale_factor).astype(np.float32).reshape(B, K, 2)
        scores = scores.astype(np.float32).reshape(B, K)
        if with_probs:
            return keypoints, scores, peak_probs.astype(np.float32).reshape(B, K)
        return keypoints, scores

    def exact_peaks(self, probs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        r"""Each recovered Gaussian's arg-max pixel and its 3x3 neighbourhood, solved only
        where the whole-map solver's answer could be (:func:`pixel_class_solver.exact_peaks
        <bench.codecs.pixel_class_solver.exact_peaks>`).

        Args:
            probs (np.ndarray): (B, K + 1, H, W) probabilities, channel 0 = background

        Returns (maps of at least 3x3 pixels):
            tuple:
            - am (np.ndarray): (B * K,) flat arg-max pixel of each :math:`G_j`, as
                ``recover_gaussians(probs).reshape(B * K, -1).argmax(1)`` (first pixel on ties)
            - patch (np.ndarray): (B * K, 9) float64 :math:`G_j` on the 3x3 stencil around
                it, shifted inside the map at the borders (row-major)
        """
        am, patch, _ = self._exact_peaks(probs)
        return am, patch

    def _exact_peaks(self, probs: np.ndarray):
        """:meth:`exact_peaks`, and the number of pixels solved per map (B,)."""
        B, C, H, W = probs.shape
        x = np.ascontiguousarray(probs).reshape(B, C, H * W)
        am = np.zeros(B * (C - 1), np.intp)
        patch = np.zeros((B * (C - 1), 9))
        Pk = x[:, 1:]
        solved = solver.exact_peaks(x, Pk.argmax(2), Pk.max(1), W, self._off9[0], am, patch)
        return am, patch, solved

    def _patch(self, P: np.ndarray, m: np.ndarray, x: np.ndarray,
               y: np.ndarray) -> np.ndarray:
        """The 3x3 stencil (M, 9) of the flattened maps P (M, H*W) around
        pixels (x, y), shifted inside the grid (row-major)."""
        W = self.heatmap_size[0]
        s = np.minimum(np.maximum(np.stack((x, y), axis=-1), 1), self._smax)
        return P[m[:, None], (s[:, 1] * W + s[:, 0])[:, None] + self._off9]

    def _refine(self, patch: np.ndarray, x: np.ndarray, y: np.ndarray,
                scores: np.ndarray) -> np.ndarray:
        """Sub-pixel refinement of the arg-max pixels (x, y) of M maps (the
        recovered Gaussians, or the probabilities themselves), on L = log P;
        ``patch`` (M, 9) is each map's 3x3 stencil around its arg-max,
        shifted inside the grid, ``scores`` (M,) the maps' values at (x, y).
        Returns (M, 2) positions.

        - both coordinates of the arg-max off the border: one Newton step
          with the 3x3 finite-difference gradient and Hessian (DARK) when the
          Hessian is negative definite, else a 1-D Newton step per axis with
          a negative second difference;
        - an axis where the arg-max is on the border (pixel a, inner
          neighbour b): ``(a + b) / 2 + sigma^2 (L_b - L_a) / (b - a)``, the
          exact vertex for a Gaussian of the codec's sigma.

        Offsets are limited to 1 px.
        """
        W, H = self.heatmap_size
        out = np.empty((len(x), 2))
        solver.refine(np.ascontiguousarray(patch, dtype=np.float64), np.asarray(x, np.int64),
                      np.asarray(y, np.int64), np.asarray(scores, np.float64), self.sigma,
                      W, H, out)
        return out


def recover_gaussians(probs: np.ndarray) -> np.ndarray:
    r"""Invert the soft target of :class:`PixelClassLabel`: the Gaussians
    :math:`G_j` (B, K, H, W) from probabilities (B, K+1, H, W), channel 0 =
    background.

    Every pixel is solved on its own by :func:`pixel_class_solver.solve_pixel
    <bench.codecs.pixel_class_solver.solve_pixel>` (the module explains the root and its
    bracket). The inputs are clamped first (negative or non-finite values to 0,
    :math:`P_0` to :math:`(0, 1]`), so any input gives finite :math:`G \in [0, 1]`; on an
    exact target the result matches the encoder's Gaussians to float64 precision.
    """
    probs = np.asarray(probs)
    B, C, H, W = probs.shape
    G = gaussian_rows(probs.transpose(0, 2, 3, 1).reshape(-1, C))
    return G.reshape(B, H, W, C - 1).transpose(0, 3, 1, 2)


def gaussian_rows(rows: np.ndarray) -> np.ndarray:
    """:func:`recover_gaussians` for pixels taken one by one: ``rows`` (n, K+1) are n pixels'
    probabilities (column 0 = background); returns their Gaussians (n, K), float64. Each row
    is solved on its own (:func:`pixel_class_solver.solve_pixel
    <bench.codecs.pixel_class_solver.solve_pixel>`, as the decoder's local solve), so any
    subset of a map's pixels gets exactly the values the whole map gets."""
    rows = np.ascontiguousarray(rows)
    if rows.dtype not in (np.float32, np.float64):
        rows = rows.astype(np.float64)
    out = np.empty((rows.shape[0], rows.shape[1] - 1))
    solver.solve_rows(rows, out)
    return out
