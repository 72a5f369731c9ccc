r"""Compiled kernels of :class:`~bench.codecs.pixel_class_label.PixelClassLabel`'s decoder.

Decoding inverts the soft target's mixture per pixel. For pixel probabilities
:math:`(P_0, P_1, \dots, P_K)`, the ratios :math:`r_k = P_k / S` (:math:`S = \sum_k P_k`) are
known and :math:`T = \sum_k G_k` is the root of

.. math::

    g(T) = \sum_k \log(1 - r_k T) - \log P_0 = 0, \qquad T \in [0, 1 / \max_k r_k).

On that interval ``g`` is concave and falls strictly from :math:`-\log P_0 \ge 0` to
:math:`-\infty`, so the root is unique, and it lies in
:math:`[\min(1 - P_0, S / P_{max}), \min(-\log P_0, (1 - P_0) S / P_{max})]`
(Weierstrass' :math:`\prod (1 - a_k) \ge 1 - \sum a_k`, :math:`\log(1 - a) \le -a`, and the
dominant keypoint's own factor :math:`1 - r_{max} T \ge P_0`). Then :math:`G_k = r_k T`.

The decoder needs the Gaussians only where an arg-max can be and on the 3x3 refinement stencil
around it: per pixel, :math:`G_j / P_j = T / S` lies between ``lo`` and ``hi`` from the
bracket above, so the lower bound at :math:`P_j`'s arg-max bounds :math:`\max G_j` from below,
and only pixels whose upper bound reaches it are solved (a few per keypoint). Every solve is
the same per-pixel function (:func:`solve_pixel`), so the answer is the whole map's.

These loops are compiled with numba: the solve is a short per-pixel Newton iteration, which
vectorised numpy could only run as dozens of whole-array calls per step (the decoder was 7x
MMPose's ``MSRAHeatmap`` that way; compiled, it is below it).
"""
import math

import numpy as np
from numba import njit

#: Newton iterations at most (1-4 are typical: the start is exact for n equal keypoints).
MAX_ITERS = 50
#: A pixel has converged when |g| (the relative error of the product) is below this, times
#: (1 + |log P0|) for the rounding of the sum of logs.
REL_TOL = 1e-13
#: Floor applied to Gaussians before taking logs in the refinement.
LOG_FLOOR = 1e-30
#: Relative margin under the lower bound of max G_j, far above the rounding of float32 inputs
#: and of the float64 solve.
_MARGIN = 1e-4
#: Largest value below 1 that 1 - r T is clamped to stay away from (the pole).
_NEAR_ONE = 1.0 - 1e-16

_jit = njit(cache=True, nogil=True, fastmath=False)


@_jit
def _clean(v):
    """A probability as the solver reads it: non-finite or negative -> 0."""
    return v if (v > 0.0 and v < np.inf) else 0.0


@_jit
def solve_pixel(col, out):
    r"""The Gaussians of one pixel: ``col`` (K + 1,) its probabilities (index 0 =
    background), ``out`` (K,) receives :math:`G_k \in [0, 1]`. Returns nothing.

    Inputs are clamped first (negative or non-finite values to 0, :math:`P_0` to
    :math:`(0, 1]`), so any input gives finite Gaussians. Newton steps run in
    :math:`y = \log(1 - r_{max} T)`, where the dominant keypoint's term is ``y`` itself, so
    that ``g`` stays close to linear next to the pole; they start at
    :math:`n (1 - P_0^{1/n})`, the exact root when :math:`n = 1 / \sum_k r_k^2` keypoints
    share the pixel equally; a step that leaves the shrinking bracket is replaced by
    bisection."""
    K = out.shape[0]
    p0 = min(max(_clean(float(col[0])), 1e-300), 1.0)
    S = 0.0
    pmax = 0.0
    kmax = 0
    for k in range(K):
        v = _clean(float(col[k + 1]))
        S += v
        if v > pmax:
            pmax = v
            kmax = k
    if not (S > 0.0) or p0 >= 1.0 or pmax <= 0.0:
        for k in range(K):
            out[k] = 0.0
        return
    inv_S = 1.0 / S
    rm = pmax * inv_S
    sum_r2 = 0.0
    for k in range(K):
        r = _clean(float(col[k + 1])) * inv_S
        sum_r2 += r * r
    logP0 = math.log(p0)
    pole = 1.0 / rm
    T_lo = min(-math.expm1(logP0), pole)
    T_hi = min(-logP0, pole)
    n = 1.0 / max(sum_r2, 1e-300)
    t0 = min(max(-n * math.expm1(logP0 / n), T_lo), T_hi)
    y_lo = math.log1p(-min(rm * T_hi, _NEAR_ONE))
    y_hi = math.log1p(-min(rm * T_lo, _NEAR_ONE))
    y = math.log1p(-min(rm * t0, _NEAR_ONE))
    tol = REL_TOL * (1.0 + abs(logP0))
    for _ in range(MAX_ITERS):
        ey = math.exp(y)
        t = -math.expm1(y) / rm
        # g = y + sum_{k != kmax} log(1 - r_k t) - log P0, the other factors as one product
        # (one log per step), renormalised before it can underflow
        prod = 1.0
        logs = 0.0
        dsum = 0.0
        for k in range(K):
            if k == kmax:
                continue
            rk = _clean(float(col[k + 1])) * inv_S
            rt = min(rk * t, _NEAR_ONE)
            f = 1.0 - rt
            prod *= f
            if prod < 1e-200:
                logs += math.log(prod)
                prod = 1.0
            dsum += rk / f
        g = y + logs + math.log(prod) - logP0
        # dg/dy = 1 + (sum_{k != kmax} r_k / (1 - r_k t)) * e^y / r_max
        dg = 1.0 + dsum * ey / rm
        if g < 0.0:  # g rises with y: the root lies above y
            y_lo = y
        else:
            y_hi = y
        if abs(g) <= tol or y_hi - y_lo <= 1e-15 * max(abs(y_hi), 1.0):
            break
        step = y - g / dg
        if not (step > y_lo and step < y_hi):  # also NaN
            step = 0.5 * (y_lo + y_hi)
        y = step
    t = -math.expm1(y) / rm
    for k in range(K):
        out[k] = min(max(_clean(float(col[k + 1])) * inv_S * t, 0.0), 1.0)


@_jit
def solve_rows(rows, out):
    """:func:`solve_pixel` for n pixels: ``rows`` (n, K + 1), ``out`` (n, K)."""
    for i in range(rows.shape[0]):
        solve_pixel(rows[i], out[i])


@_jit
def _solve_at(x, b, p, col, out):
    """Solve pixel ``p`` of map ``b`` of ``x`` (B, K + 1, HW) into ``out`` (K,)."""
    for c in range(col.shape[0]):
        col[c] = x[b, c, p]
    solve_pixel(col, out)


@_jit
def exact_peaks(x, amP, pmax, W, off9, am_out, patch_out):
    r"""Each recovered Gaussian's arg-max pixel and its 3x3 stencil, solving only the pixels
    where the whole-map answer can be.

    Args:
        x (np.ndarray): (B, K + 1, H * W) probabilities, channel 0 = background (H, W >= 3)
        amP (np.ndarray): (B, K) each :math:`P_j`'s arg-max pixel (``x[:, 1:].argmax(2)``)
        pmax (np.ndarray): (B, H * W) each pixel's largest keypoint probability
            (``x[:, 1:].max(1)``); both are whole-map passes, which numpy runs vectorised
        W (int): map width
        off9 (np.ndarray): (9,) flat offsets of the 3x3 stencil (row-major)
        am_out (np.ndarray): (B * K,) receives each :math:`G_j`'s flat arg-max (the first
            pixel on ties; 0 for a map with no mass)
        patch_out (np.ndarray): (B * K, 9) receives :math:`G_j` on the stencil around the
            arg-max, shifted inside the map at the borders

    Returns:
        np.ndarray: (B,) the number of pixels solved per map
    """
    B, C, HW = x.shape
    K = C - 1
    H = HW // W
    solved = np.empty(HW, np.int64)        # row of G holding the pixel, -1: not solved
    pix = np.empty(HW, np.int64)           # the pixel of each row of G
    G = np.empty((HW, K))
    col = np.empty(C)
    tau = np.empty(K)
    counts = np.zeros(B, np.int64)
    for b in range(B):
        # per keypoint, a lower bound of max G_j: P_j's maximum times the lower bound of
        # G_j / P_j = T / S there, min(1 - P0, S / P_max) / S
        tau_min = np.inf
        for j in range(K):
            ab = amP[b, j]
            S = 0.0
            pm = 0.0
            for k in range(1, C):
                v = _clean(float(x[b, k, ab]))
                S += v
                pm = max(pm, v)
            p0 = min(max(_clean(float(x[b, 0, ab])), 1e-300), 1.0)
            lo = min(1.0 - p0, S / pm) / S if S > 0.0 else 0.0
            best = _clean(float(x[b, j + 1, ab]))
            # a keypoint with no mass anywhere has no candidate (its G_j is 0 everywhere)
            tau[j] = best * lo * (1.0 - _MARGIN) if best > 0.0 else np.inf
            tau_min = min(tau_min, tau[j])
        # per pixel, the upper bound of T / S, (1 - P0) / P_max; a pixel can hold some
        # keypoint's maximum only if P_max times it, 1 - P0, reaches the smallest tau
        n = 0
        for p in range(HW):
            solved[p] = -1
            q = 1.0 - min(max(_clean(float(x[b, 0, p])), 1e-300), 1.0)
            if q < tau_min:
                continue
            pm = float(pmax[b, p])
            if not (pm > 0.0 and pm < np.inf):  # non-finite inputs: as the solver reads them
                pm = 0.0
                for k in range(1, C):
                    pm = max(pm, _clean(float(x[b, k, p])))
            if pm <= 0.0:
                continue
            h = q / pm
            for j in range(K):
                v = _clean(float(x[b, j + 1, p]))
                if v > 0.0 and v * h >= tau[j]:
                    _solve_at(x, b, p, col, G[n])
                    solved[p] = n
                    pix[n] = p
                    n += 1
                    break
        # per keypoint: the first solved pixel holding the maximum, then its stencil
        for j in range(K):
            gmax = 0.0
            ab = 0
            for i in range(n):  # rows in any pixel order: the lowest pixel wins ties
                v = G[i, j]
                if v > gmax or (v == gmax and v > 0.0 and pix[i] < ab):
                    gmax = v
                    ab = pix[i]
            m = b * K + j
            am_out[m] = ab
            cy = min(max(ab // W, 1), H - 2)
            cx = min(max(ab % W, 1), W - 2)
            centre = cy * W + cx
            for s in range(9):
                q = min(max(centre + off9[s], 0), HW - 1)
                if solved[q] < 0:
                    _solve_at(x, b, q, col, G[n])
                    solved[q] = n
                    pix[n] = q
                    n += 1
                patch_out[m, s] = G[solved[q], j]
        counts[b] = n
    return counts


@_jit
def refine(patch, x, y, scores, sigma, W, H, out):
    """Sub-pixel refinement of M arg-max pixels (``x``, ``y``) on L = log G: ``patch``
    (M, 9) is each map's 3x3 stencil around its arg-max (shifted inside the grid,
    row-major), ``scores`` (M,) the maps' values at the arg-max; ``out`` (M, 2) receives
    the positions.

    - both coordinates off the border: one Newton step with the 3x3 finite-difference
      gradient and Hessian (DARK) when the Hessian is negative definite, else a 1-D Newton
      step per axis with a negative second difference;
    - an axis where the arg-max is on the border (pixel a, inner neighbour b):
      ``(a + b) / 2 + sigma^2 (L_b - L_a) / (b - a)``, the exact vertex for a Gaussian of
      the codec's sigma.

    Offsets are limited to 1 px.
    """
    L = np.empty(9)
    g = np.empty(2)
    h = np.empty(2)
    off = np.empty(2)
    for m in range(x.shape[0]):
        for s in range(9):
            L[s] = math.log(max(patch[m, s], LOG_FLOOR))
        ix = x[m] - min(max(x[m], 1), W - 2) + 1  # stencil position of the arg-max, 0..2
        iy = y[m] - min(max(y[m], 1), H - 2) + 1
        La = math.log(max(scores[m], LOG_FLOOR))
        for a in range(2):
            if a == 0:  # the profile along x, through row iy
                l0, l1, l2, i = L[iy * 3], L[iy * 3 + 1], L[iy * 3 + 2], ix
            else:       # along y, through column ix
                l0, l1, l2, i = L[ix], L[3 + ix], L[6 + ix], iy
            g[a] = 0.5 * (l2 - l0)
            h[a] = l2 - 2.0 * l1 + l0
            if i == 1:
                off[a] = -g[a] / h[a] if h[a] < 0.0 else 0.0
            else:  # border: sign +1 at the first pixel (i = 0), -1 at the last (i = 2)
                off[a] = (1 - i) * (0.5 + sigma * sigma * (l1 - La))
        hxy = 0.25 * (L[8] - L[6] - L[2] + L[0])
        det = h[0] * h[1] - hxy * hxy
        if ix == 1 and iy == 1 and h[0] < 0.0 and det > 0.0:
            off[0] = (hxy * g[1] - h[1] * g[0]) / det
            off[1] = (hxy * g[0] - h[0] * g[1]) / det
        out[m, 0] = x[m] + min(max(off[0], -1.0), 1.0)
        out[m, 1] = y[m] + min(max(off[1], -1.0), 1.0)
