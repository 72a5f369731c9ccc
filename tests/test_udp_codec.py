"""``UDPHeatmapExact`` (bench/codecs/udp_heatmap.py): MMPose's ``UDPHeatmap`` with its Gaussian
targets placed at the right pixel, and the MMPose 1.3.2 bug it works around, pinned."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.codecs import UDPHeatmapExact
from bench.formulations import codec_is
from bench.formulations.heatmap import dark_blur_kernel
from mmpose.codecs import UDPHeatmap
from mmpose.registry import KEYPOINT_CODECS

INPUT, HEATMAP = (64, 64), (16, 16)  # the default geometry: 63 / 15 = 4.2 input px per px
W, H = HEATMAP
K = 17
SIGMAS = (1.0, 1.5, 2.0)
#: sigmas whose 3 sigma is not an integer: fraction 0.5 (the default), in (0, 0.5) and (0.5, 1)
ODD_SIGMAS = (1.5, 1.1, 1.3)


def make(cls, sigma, **kw):
    return cls(input_size=INPUT, heatmap_size=HEATMAP, sigma=sigma,
               blur_kernel_size=dark_blur_kernel(sigma), **kw)


def encode_hm(codec, kh, visible=None):
    """Encode keypoints given in heatmap px (1, K, 2); returns (heatmaps, weights, the heatmap
    coordinates the codec itself computes: ``keypoints / scale_factor``)."""
    kp = np.asarray(kh, np.float64) * codec.scale_factor
    vis = np.ones(kp.shape[:2], np.float32) if visible is None else visible
    enc = codec.encode(kp, vis)
    return enc['heatmaps'], enc['keypoint_weights'], kp / codec.scale_factor


def peak(hm):
    return tuple(int(v) for v in np.unravel_index(hm.argmax(), hm.shape)[::-1])  # (x, y)


# --------------------------------------------------------------------------------------------
# the upstream bug, pinned

def test_upstream_udp_corner_bug_pinned():
    """MMPose 1.3.2 ``generate_udp_gaussian_heatmaps``: ``(mu - radius).astype(int64)`` rounds
    the window corner toward zero; with 3 sigma = 4.5 a keypoint whose rounded centre is <= 4
    gets its peak one pixel right (down for y)."""
    hm, _, _ = encode_hm(make(UDPHeatmap, 1.5), [[[3.0, 8.0], [8.0, 2.0], [8.0, 8.0]]])
    fixed = ('MMPose fixed generate_udp_gaussian_heatmaps: drop the workaround '
             '(bench/codecs/udp_heatmap.py UDPHeatmapExact; mmpose_configs/regression_udp.py '
             'back to UDPHeatmap, its comment, this test)')
    assert peak(hm[0]) == (4, 8), fixed  # should be (3, 8)
    assert peak(hm[1]) == (8, 3), fixed  # should be (8, 2)
    assert peak(hm[2]) == (8, 8)         # centres > 4 are right
    hm1, _, _ = encode_hm(make(UDPHeatmap, 1.0), [[[1.0, 8.0]]])
    assert peak(hm1[0]) == (1, 8)        # 3 sigma integer: no shift


# --------------------------------------------------------------------------------------------
# registration and the derivation table

def test_registered_and_treated_as_udp():
    assert KEYPOINT_CODECS.get('UDPHeatmapExact') is UDPHeatmapExact
    assert issubclass(UDPHeatmapExact, UDPHeatmap)
    assert codec_is('UDPHeatmapExact', 'UDPHeatmap') and codec_is('UDPHeatmap', 'UDPHeatmap')
    assert not codec_is('MSRAHeatmap', 'UDPHeatmap') and not codec_is('NoSuch', 'UDPHeatmap')
    # decoding is MMPose's, the method itself
    assert UDPHeatmapExact.decode is UDPHeatmap.decode
    # heatmap_type='combined' is MMPose's encoding
    kh = np.array([[[3.0, 8.0], [0.2, 14.7]]])
    a = encode_hm(make(UDPHeatmapExact, 1.5, heatmap_type='combined'), kh)
    b = encode_hm(make(UDPHeatmap, 1.5, heatmap_type='combined'), kh)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# --------------------------------------------------------------------------------------------
# identical to MMPose wherever MMPose is right

_in_range = arrays(np.float64, (1, K, 2), elements=st.floats(-0.5, 15.49))
_visible = arrays(np.float32, (1, K), elements=st.sampled_from([0.0, 1.0, 2.0]))


@settings(max_examples=60, deadline=None)
@given(kh=_in_range, vis=_visible, sigma=st.sampled_from(SIGMAS + ODD_SIGMAS))
def test_equals_mmpose_wherever_mmpose_is_right(kh, vis, sigma):
    """Bit for bit where MMPose's corner is right: everywhere in range at an integer 3 sigma,
    farther than 3 sigma from the top and left borders (rounded centre >= 3 sigma) at sigma
    1.5 and 1.3 (fraction of 3 sigma >= 0.5). Weights: MMPose's everywhere."""
    ours, w_ours, k = encode_hm(make(UDPHeatmapExact, sigma), kh, vis)
    theirs, w_theirs, _ = encode_hm(make(UDPHeatmap, sigma), kh, vis)
    np.testing.assert_array_equal(w_ours, w_theirs)
    r = 3 * sigma
    mu = np.floor(k[0] + 0.5)
    if r % 1 == 0:
        right = np.ones(K, bool)
    elif r % 1 >= 0.5:
        right = (mu >= r).all(-1)
    else:  # sigma 1.1: MMPose's corner is one pixel off everywhere (next test)
        right = np.zeros(K, bool)
    np.testing.assert_array_equal(ours[right], theirs[right])
    if sigma in SIGMAS and sigma != 1.5:
        assert right.all()


# --------------------------------------------------------------------------------------------
# the target is right everywhere

def _closed_form(k, sigma):
    """The Gaussian of each keypoint (heatmap px (K, 2)) on MMPose's window around its rounded
    centre mu: [mu - c, floor(mu + 3 sigma + 1)), c = (6 sigma + 1) // 2, 0 elsewhere."""
    r = 3 * sigma
    c = int((2 * r + 1) // 2)
    u, v = np.arange(W), np.arange(H)
    out = np.zeros((len(k), H, W))
    for j, (x, y) in enumerate(k):
        mx, my = np.floor(x + 0.5), np.floor(y + 0.5)
        wx = (u >= mx - c) & (u < np.floor(mx + r + 1))
        wy = (v >= my - c) & (v < np.floor(my + r + 1))
        g = np.exp(-((u[None] - x)**2 + (v[:, None] - y)**2) / (2 * sigma**2))
        out[j] = g * wy[:, None] * wx[None]
    return out


@settings(max_examples=60, deadline=None)
@given(kh=_in_range, sigma=st.sampled_from(SIGMAS + ODD_SIGMAS))
def test_target_peaks_at_the_nearest_pixel(kh, sigma):
    """Every visible in-range keypoint: the pixel nearest to it holds its map's maximum
    (ties at exact half pixels allowed), and the map is the closed-form Gaussian on its
    window (float32)."""
    hm, w, k = encode_hm(make(UDPHeatmapExact, sigma), kh)
    assert (w == 1).all()
    mu = np.floor(k[0] + 0.5).astype(int)
    for j in range(K):
        assert hm[j, mu[j, 1], mu[j, 0]] == hm[j].max(), (sigma, k[0, j], peak(hm[j]))
    np.testing.assert_allclose(hm, _closed_form(k[0], sigma), atol=2e-7)


@pytest.mark.parametrize('sigma, pixels', [
    # 3 sigma 4.5 / 3.9: rounded centres < 3 sigma (top/left border) moved right/down
    (1.5, [(2, 8), (8, 1), (0, 0), (4, 4)]),
    (1.3, [(2, 8), (8, 1), (0, 0), (3, 3)]),
    # 3 sigma 3.3: rounded centres >= 4 moved left/up (nearer the border truncation
    # compensates)
    (1.1, [(8, 8), (12, 5), (4, 15), (15, 15)]),
])
def test_stock_is_wrong_where_ours_is_right(sigma, pixels):
    """The cases the subclass exists for: MMPose's peak is a pixel off, ours is not."""
    kh = np.array([pixels], np.float64)
    ours, _, _ = encode_hm(make(UDPHeatmapExact, sigma), kh)
    theirs, _, _ = encode_hm(make(UDPHeatmap, sigma), kh)
    assert [peak(m) for m in ours] == pixels
    assert all(peak(a) != peak(b) for a, b in zip(ours, theirs)), sigma


# --------------------------------------------------------------------------------------------
# round trip through MMPose's (inherited) decoding

def _decode_hm(codec, hm):
    """MMPose's UDP decoding, back in heatmap px: ``decode`` returns
    ``x / (W - 1) * input_size`` (what the top-down post-processing expects of a UDP codec,
    with its ``input_scale / input_size``), not ``x * scale_factor``."""
    kp, _ = codec.decode(hm)
    return kp[0] * (np.array(HEATMAP) - 1) / np.array(INPUT)


@settings(max_examples=40, deadline=None)
@given(u=arrays(np.float64, (1, K, 2), elements=st.floats(0, 1)),
       sigma=st.sampled_from(SIGMAS))
def test_round_trip_recovers_keypoints(u, sigma):
    """decode(encode(k)) = k within 0.05 heatmap px for visible keypoints at least
    1.5 sigma + 0.5 px inside the heatmap, where MMPose's UDP-DARK decoding (blur, then a
    Newton step) sees the whole Gaussian; nearer the border that decoding is off by itself
    (next test)."""
    m = 1.5 * sigma + 0.5
    kh = m + u * (np.array(HEATMAP) - 1 - 2 * m)
    codec = make(UDPHeatmapExact, sigma)
    hm, _, k = encode_hm(codec, kh)
    err = np.abs(_decode_hm(codec, hm) - k[0]).max()
    assert err < 0.05, (sigma, err)


@pytest.mark.parametrize('sigma', SIGMAS)
def test_border_decoding_error_is_symmetric(sigma):
    """Near the borders MMPose's UDP decoding errs by itself (blur and Newton step at the
    edge), but with the targets right the error at the top/left border mirrors the one at the
    bottom/right, to float precision; MMPose's targets at sigma 1.5 break the mirror by up to
    2 px."""
    xs = np.linspace(-0.49, 4.41, 50)  # no exact half pixels (arg-max ties)

    def signed_err(cls, x):
        codec = make(cls, sigma)
        kh = np.stack([x, np.full_like(x, 7.3)], -1)[None]
        hm, _, k = encode_hm(codec, kh)
        return _decode_hm(codec, hm)[:, 0] - k[0, :, 0]

    for cls in (UDPHeatmapExact, UDPHeatmap):
        left, right = signed_err(cls, xs), signed_err(cls, W - 1 - xs)
        asym = np.abs(left + right).max()
        if cls is UDPHeatmapExact or sigma != 1.5:
            assert asym < 1e-4, (cls.__name__, sigma, asym)
        else:
            assert asym > 0.9, asym
