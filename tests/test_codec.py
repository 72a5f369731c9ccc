"""Tests of the per-pixel classification codec ``PixelClassLabel``."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.codecs import PixelClassLabel
from mmpose.registry import KEYPOINT_CODECS

K = 17
STRIDE = 4


def oracle(keypoints, visible, input_size, heatmap_size, sigma):
    """Naive full-grid reference of the soft target (no window), with
    instances merged by the per-keypoint max of their Gaussians."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    N, Kk = keypoints.shape[:2]
    (w, h), (W, H) = input_size, heatmap_size
    x = keypoints[..., 0] * W / w
    y = keypoints[..., 1] * H / h
    valid = ((np.asarray(visible) >= 0.5) & (x >= -0.5) & (x < W - 0.5) &
             (y >= -0.5) & (y < H - 0.5))
    u = np.arange(W)[None, None, None, :]
    v = np.arange(H)[None, None, :, None]
    G = np.exp(-((u - x[..., None, None])**2 + (v - y[..., None, None])**2) /
               (2 * sigma**2))
    G = np.where(valid[..., None, None], G, 0.0).max(0)  # (K, H, W)
    P0 = np.prod(1 - G, axis=0)
    S = G.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        Pj = np.where(S > 0, (1 - P0) * G / S, 0.0)
    return np.concatenate([P0[None], Pj]), valid.astype(np.float32)


def make_codec(W=32, H=32, sigma=2.0, **kwargs):
    return PixelClassLabel(
        input_size=(W * STRIDE, H * STRIDE),
        heatmap_size=(W, H),
        sigma=sigma,
        **kwargs)


def separated_points(rng, W, H, sigma, n=K, lo=0.0, tries=2000):
    """Up to n heatmap-space points in [lo, W-1-lo] x [lo, H-1-lo], pairwise
    at least 4 sigma apart."""
    pts = []
    for _ in range(tries):
        p = rng.uniform([lo, lo], [W - 1 - lo, H - 1 - lo])
        if all(np.hypot(*(p - q)) >= 4 * sigma for q in pts):
            pts.append(p)
            if len(pts) == n:
                break
    return np.array(pts)


def test_registered_and_tables():
    codec = KEYPOINT_CODECS.build(
        dict(
            type='PixelClassLabel',
            input_size=(192, 256),
            heatmap_size=(48, 64),
            sigma=2))
    assert isinstance(codec, PixelClassLabel)
    assert codec.label_mapping_table == dict(
        keypoint_weights='keypoint_weights')
    assert codec.field_mapping_table == dict(heatmaps='heatmaps')
    assert codec.support_batch_decoding


@pytest.mark.parametrize('W,H,sigma', [(32, 32, 2.0), (48, 64, 2.0),
                                       (16, 16, 1.5), (24, 32, 1.0),
                                       (16, 40, 2.0)])
def test_shapes_sum_to_one_and_range(W, H, sigma):
    rng = np.random.default_rng(0)
    codec = make_codec(W, H, sigma)
    for _ in range(20):
        kp = rng.uniform(-10, [W * STRIDE + 10, H * STRIDE + 10], (1, K, 2))
        vis = (rng.uniform(size=(1, K)) > 0.2).astype(np.float32)
        enc = codec.encode(kp, vis)
        hm, kw = enc['heatmaps'], enc['keypoint_weights']
        assert hm.shape == (K + 1, H, W) and hm.dtype == np.float32
        assert kw.shape == (1, K) and kw.dtype == np.float32
        assert np.abs(hm.astype(np.float64).sum(0) - 1).max() <= 1e-6
        assert hm.min() >= 0 and hm.max() <= 1


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sigma=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    size=st.sampled_from([(16, 16), (32, 32), (48, 64), (16, 40)]),
    clustered=st.booleans())
def test_window_truncation_matches_full_grid_oracle(seed, sigma, size,
                                                    clustered):
    rng = np.random.default_rng(seed)
    W, H = size
    codec = make_codec(W, H, sigma)
    if clustered:
        # all keypoints near one spot: the worst case for truncation
        centre = rng.uniform([0, 0], [W, H])
        kp_hm = centre + rng.normal(scale=3 * sigma, size=(1, K, 2))
    else:
        kp_hm = rng.uniform(-2, [W + 2, H + 2], (1, K, 2))
    vis = (rng.uniform(size=(1, K)) > 0.1).astype(np.float32)
    kp = kp_hm * STRIDE
    enc = codec.encode(kp, vis)
    ref, ref_w = oracle(kp, vis, codec.input_size, codec.heatmap_size, sigma)
    assert np.abs(enc['heatmaps'] - ref).max() <= 1e-4
    np.testing.assert_array_equal(enc['keypoint_weights'], ref_w)


def test_multi_instance_uses_max_of_gaussians():
    rng = np.random.default_rng(1)
    codec = make_codec(32, 32, 2.0)
    kp = rng.uniform(0, 127, (3, K, 2))
    vis = (rng.uniform(size=(3, K)) > 0.2).astype(np.float32)
    enc = codec.encode(kp, vis)
    ref, ref_w = oracle(kp, vis, codec.input_size, codec.heatmap_size, 2.0)
    assert enc['keypoint_weights'].shape == (3, K)
    np.testing.assert_array_equal(enc['keypoint_weights'], ref_w)
    assert np.abs(enc['heatmaps'] - ref).max() <= 1e-4
    assert np.abs(enc['heatmaps'].sum(0) - 1).max() <= 1e-6
    # no instance: all background
    enc0 = codec.encode(np.zeros((0, K, 2)), np.zeros((0, K)))
    assert enc0['keypoint_weights'].shape == (0, K)
    assert np.all(enc0['heatmaps'][0] == 1) and np.all(
        enc0['heatmaps'][1:] == 0)


@pytest.mark.parametrize('sigma', [1.0, 2.0, 3.0])
def test_background_far_and_at_lone_joint(sigma):
    rng = np.random.default_rng(2)
    W = H = 64
    codec = make_codec(W, H, sigma)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    for _ in range(10):
        pts = separated_points(rng, W, H, sigma, n=10)
        pts[0] = np.round(pts[0])  # a joint centred on a pixel
        if any(np.hypot(*(pts[0] - q)) < 4 * sigma for q in pts[1:]):
            continue
        hm = codec.encode(pts[None] * STRIDE)['heatmaps']
        dist = np.min(
            np.hypot(u[None] - pts[:, 0, None, None],
                     v[None] - pts[:, 1, None, None]), axis=0)
        far = dist > 4 * sigma
        assert far.sum() > 50
        assert hm[0][far].min() >= 0.99
        x0, y0 = pts[0].astype(int)
        assert hm[0, y0, x0] <= 0.01
        assert hm[1, y0, x0] >= 0.99


@pytest.mark.parametrize('W,H,sigma', [(32, 32, 2.0), (48, 64, 2.0),
                                       (64, 64, 3.0), (16, 16, 1.0),
                                       (24, 32, 1.5)])
def test_round_trip(W, H, sigma):
    rng = np.random.default_rng(3)
    codec = make_codec(W, H, sigma)
    worst = 0.0
    for _ in range(40):
        # inside the grid, including the outer half pixel
        pts = separated_points(rng, W, H, sigma, lo=-0.49)
        enc = codec.encode(pts[None] * STRIDE)
        kp, scores = codec.decode(enc['heatmaps'])
        assert kp.shape == (1, len(pts), 2) and scores.shape == (1, len(pts))
        worst = max(worst, np.abs(kp[0] / STRIDE - pts).max())
        # the score is the recovered Gaussian's peak G_j, the second score the probability
        # P_j at the same pixel
        from bench.codecs.pixel_class_label import recover_gaussians
        G = recover_gaussians(enc['heatmaps'][None])[0, :len(pts)].reshape(len(pts), -1)
        P = enc['heatmaps'][1:len(pts) + 1].reshape(len(pts), -1)
        peak = G.argmax(1)
        np.testing.assert_array_equal(scores[0], G[np.arange(len(pts)), peak].astype(np.float32))
        _, s2, probs = codec.decode_with_probs(enc['heatmaps'][None])
        np.testing.assert_array_equal(s2, scores)
        np.testing.assert_array_equal(probs[0], P[np.arange(len(pts)), peak])
    assert worst < 0.05


def test_round_trip_anisotropic_input_scale():
    # input 192x256 -> heatmap 48x64 (same stride on both axes) and a codec
    # with different strides on x and y
    rng = np.random.default_rng(4)
    codec = PixelClassLabel((192, 256), (64, 32), sigma=1.5)
    for _ in range(10):
        pts = separated_points(rng, 64, 32, 1.5, n=10)
        kp_in = pts * np.array([192 / 64, 256 / 32])
        kp, _ = codec.decode(codec.encode(kp_in[None])['heatmaps'])
        err = np.abs(kp[0] - kp_in) / np.array([192 / 64, 256 / 32])
        assert err.max() < 0.05


def test_invisible_and_outside_keypoints():
    codec = make_codec(32, 32, 2.0)
    j = np.arange(K)
    # all inside, 6 heatmap pixels apart
    kp = np.stack([8 + 24 * (j % 5), 8 + 24 * (j // 5)], -1)[None] * 1.0
    vis = np.ones((1, K), np.float32)
    vis[0, 3] = 0  # invisible
    vis[0, 4] = 0.4  # below 0.5: invisible
    kp[0, 5] = (-2.5, 60)  # x_hm = -0.625 < -0.5: outside
    kp[0, 6] = (60, 128.0)  # y_hm = 32 >= H - 0.5: outside
    kp[0, 7] = (np.nan, np.nan)
    kp[0, 8] = (-1.9, 60)  # x_hm = -0.475: inside (kp 9 is at (32, 56))
    enc = codec.encode(kp, vis)
    hm, kw = enc['heatmaps'], enc['keypoint_weights']
    dropped = [3, 4, 5, 6, 7]
    expected = np.ones(K, np.float32)
    expected[dropped] = 0
    np.testing.assert_array_equal(kw[0], expected)
    for j in dropped:
        assert np.all(hm[1 + j] == 0)
    for j in set(range(K)) - set(dropped):
        assert hm[1 + j].max() > 0.5
    # keypoints_visible given as (N, K, 2) (visibility, weight) also works
    enc2 = codec.encode(kp, np.stack([vis, np.ones_like(vis)], -1))
    np.testing.assert_array_equal(enc2['keypoint_weights'], kw)
    # default visibility: all visible
    enc3 = codec.encode(np.full((1, K, 2), 50.0))
    assert enc3['keypoint_weights'].sum() == K


def test_hard_target_is_one_hot():
    rng = np.random.default_rng(5)
    tau = 0.5
    codec = make_codec(32, 32, 2.0, target='hard', bg_threshold=tau)
    for _ in range(10):
        kp = rng.uniform(0, 127, (1, K, 2))
        vis = (rng.uniform(size=(1, K)) > 0.2).astype(np.float32)
        enc = codec.encode(kp, vis)
        hm = enc['heatmaps']
        assert hm.shape == (K + 1, 32, 32) and hm.dtype == np.float32
        assert set(np.unique(hm)) <= {0.0, 1.0}
        assert np.all(hm.sum(0) == 1)
        # label = arg-max of [tau, G_1..G_K] of the full-grid Gaussians
        x = kp[0, :, 0] / STRIDE
        y = kp[0, :, 1] / STRIDE
        u = np.arange(32)
        G = np.exp(-((u[None, None] - x[:, None, None])**2 +
                     (u[None, :, None] - y[:, None, None])**2) / 8.0)
        G *= enc['keypoint_weights'][0][:, None, None]
        ref = np.concatenate([np.full((1, 32, 32), tau), G]).argmax(0)
        np.testing.assert_array_equal(hm.argmax(0), ref)
    # multi-instance hard target
    hm2 = codec.encode(rng.uniform(0, 127, (2, K, 2)))['heatmaps']
    assert np.all(hm2.sum(0) == 1) and set(np.unique(hm2)) <= {0.0, 1.0}


def test_batch_decode_matches_decode_and_accepts_tensors():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(6)
    codec = make_codec(32, 32, 2.0)
    logits = rng.normal(size=(4, K + 1, 32, 32)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    kps, scores = codec.batch_decode(torch.from_numpy(probs))
    assert len(kps) == 4 and len(scores) == 4
    for b in range(4):
        kp, sc = codec.decode(probs[b])
        assert kps[b].shape == (1, K, 2) and scores[b].shape == (1, K)
        np.testing.assert_allclose(kps[b], kp, rtol=1e-6)
        np.testing.assert_allclose(scores[b], sc, rtol=1e-6)
        assert np.all(sc > 0) and np.all(sc <= 1)
        # refinement stays within one pixel of the arg-max (of the recovered Gaussians)
        from bench.codecs.pixel_class_label import recover_gaussians
        am = recover_gaussians(probs[b][None])[0].reshape(K, -1).argmax(1)
        grid = np.stack([am % 32, am // 32], -1) * STRIDE
        assert np.abs(kp[0] - grid).max() <= STRIDE + 1e-4
        G = recover_gaussians(probs[b][None])[0].reshape(K, -1)
        np.testing.assert_allclose(sc[0], G[np.arange(K), am], rtol=1e-6)


def _whole_map_decode(codec, probs):
    """The reference decoder: every pixel's Gaussians solved (recover_gaussians), then the
    codec's own arg-max and refinement."""
    from bench.codecs.pixel_class_label import recover_gaussians
    B, C, H, W = probs.shape
    M = B * (C - 1)
    maps = recover_gaussians(probs).reshape(M, H * W)
    m = np.arange(M)
    am = maps.argmax(1)
    y, x = np.divmod(am, W)
    locs = codec._refine(codec._patch(maps, m, x, y), x, y, maps[m, am])
    locs[probs[:, 1:].reshape(M, -1)[m, am] <= 0] = -1
    return ((locs * codec.scale_factor).astype(np.float32).reshape(B, C - 1, 2),
            maps[m, am].astype(np.float32).reshape(B, C - 1))


@pytest.mark.parametrize('hm,sigma', [(16, 1.5), (64, 1.5), (64, 2.0), (7, 1.0)])
def test_local_decode_equals_whole_map_solve(hm, sigma):
    """The decoder solves the mixture only near candidate peaks and their stencils; keypoints
    and scores must equal the whole-map solver's (the acceptance asks for 1e-6 px): exact
    targets, crowded keypoints, noisy softmaxes, keypoints off the grid and on its border."""
    rng = np.random.default_rng(hm)
    codec = make_codec(hm, hm, sigma)
    for trial in range(24):
        B = 3
        kp = rng.uniform(-2, hm * STRIDE + 2, (B, K, 2))
        if trial % 3 == 0:      # half the keypoints crowd one spot
            kp[:, :8] = kp[:, :1] + rng.normal(0, STRIDE, (B, 8, 2))
        if trial % 4 == 1:      # on the border
            kp[:, :4, 0] = 0.0
        probs = np.stack([codec.encode(kp[b:b + 1])['heatmaps'] for b in range(B)])
        if trial % 2:
            logits = np.log(probs + 1e-3) + rng.normal(0, 1.0, probs.shape)
            probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        got_kp, got_sc = codec._decode_array(probs)
        ref_kp, ref_sc = _whole_map_decode(codec, probs)
        np.testing.assert_allclose(got_kp / STRIDE, ref_kp / STRIDE, atol=1e-6, rtol=0)
        np.testing.assert_allclose(got_sc, ref_sc, atol=1e-7, rtol=0)


def test_local_decode_solves_few_pixels():
    """The point of the local solve: a handful of pixels per keypoint, not H*W, also on a
    network-like softmax where no probability is exactly 0."""
    codec = make_codec(64, 64, 1.5)
    rng = np.random.default_rng(0)
    probs = codec.encode(rng.uniform(20, 230, (1, K, 2)))['heatmaps'][None]
    assert 0 < codec._exact_peaks(probs)[2][0] <= 20 * K
    logits = np.log(probs + 1e-4) + rng.normal(0, 0.3, probs.shape)
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert 0 < codec._exact_peaks(soft.astype(np.float32))[2][0] <= 20 * K


def test_decode_all_zero_channel():
    codec = make_codec(16, 16, 1.5)
    kp = np.full((1, K, 2), 30.0)
    vis = np.zeros((1, K))
    vis[0, 0] = 1
    hm = codec.encode(kp, vis)['heatmaps']
    dec, scores = codec.decode(hm)
    assert np.all(np.isfinite(dec))
    assert scores[0, 0] > 0.8 and np.all(scores[0, 1:] == 0)
    np.testing.assert_allclose(dec[0, 0], (30, 30), atol=0.05 * STRIDE)


def test_pickle_and_deepcopy_stay_small():
    import copy
    import pickle
    codec = make_codec(64, 64, 2.0)
    kp = np.random.default_rng(7).uniform(0, 255, (1, K, 2))
    ref = codec.encode(kp)['heatmaps']
    blob = pickle.dumps(codec)
    assert len(blob) < 10_000
    for clone in (pickle.loads(blob), copy.deepcopy(codec)):
        np.testing.assert_array_equal(clone.encode(kp)['heatmaps'], ref)


# --------------------------------------------------------------------------------------------
# exact decoding of crowded targets (mixture inversion)

def _errors(codec, kp, vis):
    """Heatmap-pixel distance of every visible in-bounds keypoint after a round trip."""
    enc = codec.encode(kp, vis)
    dec, _ = codec.decode(enc['heatmaps'])
    ok = enc['keypoint_weights'][0] > 0
    scale = np.asarray(codec.scale_factor)
    return np.hypot(*((dec[0] - kp[0]) / scale).T)[ok]


def crowded_pose(rng, W, H, n_cluster=17, spread=3.0, border=False):
    """17 heatmap-space keypoints within ``spread`` px of a centre, with a pair 1 px apart,
    two coincident keypoints and (``border``) some on the heatmap's edge."""
    c = rng.uniform(spread + 1, [W - spread - 2, H - spread - 2])
    pts = c + rng.uniform(-spread, spread, (n_cluster, 2))
    pts[1] = pts[0] + (1.0, 0.0)     # 1 px apart
    pts[3] = pts[2]                  # coincident
    pts[4] = pts[2] + (0.0, 1.0)
    if border:
        pts[5] = (0.0, rng.uniform(0, H - 1))
        pts[6] = (W - 1.0, rng.uniform(0, H - 1))
        pts[7] = (rng.uniform(0, W - 1), 0.0)
        pts[8] = (rng.uniform(0, W - 1), H - 1.0)
    return pts


@pytest.mark.parametrize('W,H,sigma', [(16, 16, 1.5), (32, 32, 2.0), (24, 32, 1.0),
                                       (64, 64, 2.0)])
def test_round_trip_crowded_poses_exact(W, H, sigma):
    """Crowded keypoints (17 within a few pixels, pairs 1 px apart, coincident ones, border
    ones, invisible ones mixed in) come back within 0.05 heatmap px: the decoder inverts the
    mixture instead of refining P_j, whose shared mass pushes neighbours apart."""
    rng = np.random.default_rng(W * 100 + H)
    codec = make_codec(W, H, sigma)
    worst = 0.0
    for trial in range(30):
        pts = crowded_pose(rng, W, H, border=trial % 2 == 1)
        kp = (pts * STRIDE)[None]
        vis = np.ones((1, K), np.float32)
        vis[0, rng.choice(K, 3, replace=False)] = 0  # invisible ones mixed in
        vis[0, :5] = 1  # keep the adjacent / coincident ones visible
        err = _errors(codec, kp, vis)
        assert err.size >= 10
        worst = max(worst, float(err.max()))
    assert worst <= 0.05, worst


def test_crowded_poses_were_biased_without_mixture_inversion():
    """The same crowded targets decoded on P_j (the decoder before the fix) are off by far more
    than 0.05 px: the test above can fail."""
    rng = np.random.default_rng(0)
    codec = make_codec(16, 16, 1.5, decode_exact=False)
    worst = max(float(_errors(codec, (crowded_pose(rng, 16, 16) * STRIDE)[None],
                              np.ones((1, K), np.float32)).max()) for _ in range(10))
    assert worst > 0.3


def test_recover_gaussians_exact_on_target():
    from bench.codecs.pixel_class_label import recover_gaussians
    rng = np.random.default_rng(1)
    W = H = 16
    pts = crowded_pose(rng, W, H)
    target, _ = oracle((pts * STRIDE)[None], np.ones((1, K)), (W * STRIDE, H * STRIDE),
                       (W, H), 1.5)
    u = np.arange(W)
    G = np.exp(-((u[None, None, :] - pts[:, 0, None, None])**2 +
                 (u[None, :, None] - pts[:, 1, None, None])**2) / (2 * 1.5**2))
    np.testing.assert_allclose(recover_gaussians(target[None])[0], G, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(0.0, 3.0))
def test_recover_gaussians_robust_on_noisy_softmax(seed, noise):
    """Network outputs are no exact mixtures: any softmax map gives finite G in [0, 1], and a
    perturbed target stays close to the Gaussians (bounded error)."""
    from bench.codecs.pixel_class_label import recover_gaussians
    rng = np.random.default_rng(seed)
    W = H = 16
    target, _ = oracle((crowded_pose(rng, W, H, spread=5) * STRIDE)[None], np.ones((1, K)),
                       (W * STRIDE, H * STRIDE), (W, H), 1.5)
    logits = np.log(np.maximum(target, 1e-12)) + rng.normal(0, noise, target.shape)
    p = np.exp(logits - logits.max(0))
    p /= p.sum(0)
    G = recover_gaussians(p[None])[0]
    assert np.isfinite(G).all() and G.min() >= 0 and G.max() <= 1
    # pure random softmax maps, extreme logits included
    wild = rng.normal(0, 30, (2, K + 1, H, W))
    wild = np.exp(wild - wild.max(1, keepdims=True))
    wild /= wild.sum(1, keepdims=True)
    Gw = recover_gaussians(wild)
    assert np.isfinite(Gw).all() and Gw.min() >= 0 and Gw.max() <= 1
    # and a decode of them neither fails nor returns NaN
    kp, sc = make_codec(W, H, 1.5).batch_decode(wild.astype(np.float32))
    assert np.isfinite(np.stack(kp)).all() and np.isfinite(np.stack(sc)).all()


def test_recover_gaussians_bounded_error_small_noise():
    from bench.codecs.pixel_class_label import recover_gaussians
    rng = np.random.default_rng(3)
    W = H = 16
    pts = crowded_pose(rng, W, H, spread=5)
    target, _ = oracle((pts * STRIDE)[None], np.ones((1, K)), (W * STRIDE, H * STRIDE),
                       (W, H), 1.5)
    exact = recover_gaussians(target[None])[0]
    p = target * np.exp(rng.normal(0, 0.01, target.shape))  # 1% multiplicative noise
    p /= p.sum(0)
    assert np.abs(recover_gaussians(p[None])[0] - exact).max() < 0.05
    dec_exact, _ = make_codec(W, H, 1.5).decode(target.astype(np.float32))
    dec_noisy, _ = make_codec(W, H, 1.5).decode(p.astype(np.float32))
    assert np.abs(dec_exact - dec_noisy).max() / STRIDE < 0.1


# --------------------------------------------------------------------------------------------
# the stock codec we lean on: pinned upstream bug, and the baseline that avoids it

def _msra_peak(unbiased: bool, x: float, sigma: float = 1.5):
    from mmpose.codecs import MSRAHeatmap
    codec = MSRAHeatmap(input_size=(64, 64), heatmap_size=(16, 16), sigma=sigma,
                        unbiased=unbiased)
    kp = np.array([[[x * 4, 8.0 * 4]]])
    hm = codec.encode(kp, np.ones((1, 1)))['heatmaps'][0]
    return np.unravel_index(hm.argmax(), hm.shape)[::-1]  # (x, y)


def test_upstream_truncation_bug_in_generate_gaussian_heatmaps():
    """MMPose 1.3.2 ``generate_gaussian_heatmaps``: ``(mu - radius).astype(int64)`` rounds
    toward zero, so with 3 sigma = 4.5 a keypoint whose rounded centre is <= 4 gets its peak one
    pixel right (down for y). PINNED: when this test fails after an upgrade, the bug is fixed:
    update the README's note and the stock 'regression' row's description."""
    assert _msra_peak(False, 3.0) == (4, 8)   # should be (3, 8)
    assert _msra_peak(False, 8.0) == (8, 8)   # centres > 4 are right
    assert _msra_peak(False, 3.0, sigma=2.0) == (3, 8)  # 3 sigma integer: no shift


@pytest.mark.parametrize('x', [0.0, 1.0, 2.0, 3.0, 3.4, 4.0, 7.0, 15.0])
def test_unbiased_msra_baseline_not_affected(x):
    """The headline baseline's encoding (``unbiased=True``) peaks at the right pixel
    everywhere, and its DARK decoding round-trips."""
    assert _msra_peak(True, x) == (int(np.floor(x + 0.5)), 8)
