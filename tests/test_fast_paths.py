"""Every shortcut of the engine has a twin: the same random geometries with it forced on, with
it switched off, and against the brute force (tests/reference.py).

The shortcuts (`engine.FastPaths`): OpenCV's INTER_AREA for uint8 2x2 means, OpenCV's merge
to interleave channel planes, channels-last planes, slabs on threads, narrow integer
accumulators, exact integer powers, window-by-window reduction of huge windows, and the
scaled lp for powers that leave the float range. "Forced on" also lowers the size thresholds
to nothing, so that a 5x7 image takes every path it can. Geometries cover ceil mode, odd
sizes, padding, dilation, every channel count from 1 to 6 and every output dtype.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import pool_ref, round_half_up

from poolcli import engine, pool
from poolcli.backends import opencv
from poolcli.core.geometry import plan_pool
from poolcli.engine import sums
from poolcli.errors import PoolError

SWITCHES = tuple(vars(engine.FastPaths()))
MODES = ("max", "min", "avg", "sum", "l2", "lp", "median")
INPUT_DTYPES = ("uint8", "uint16", "int16", "float32", "float64")
OUTPUT_DTYPES = (None, "uint8", "uint16", "int32", "float32", "float64")


@pytest.fixture
def forced_on(monkeypatch):
    """Every size threshold at nothing and two threads: shortcuts taken wherever they apply."""
    opencv.cv2()  # loaded, so OpenCV "pays" for any size
    monkeypatch.setattr(engine.BUDGETS, "min_parallel_bytes", 0)
    monkeypatch.setattr(engine.BUDGETS, "chunk_bytes", 16)
    monkeypatch.setattr(engine.BUDGETS, "window_wise_ratio", 0)
    monkeypatch.setattr(engine.BUDGETS, "median_count_taps", 0)
    monkeypatch.setenv("POOLCLI_THREADS", "2")


@st.composite
def cases(draw):
    """An image (H x W x C) or NCHW stack, a mode, a geometry that fits, and dtypes."""
    layout = draw(st.sampled_from(["hwc", "hw", "nchw"]))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    channels = draw(st.integers(1, 6))
    shape = {"hwc": (height, width, channels), "hw": (height, width), "nchw": (2, channels, height, width)}[layout]
    axes = (0, 1) if layout != "nchw" else (2, 3)
    window = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(2))
    spans = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    sizes = (height, width)
    if any(span > size + 2 * (span - 1) for span, size in zip(spans, sizes)):
        window, dilation, spans = (1, 1), (1, 1), [1, 1]
    padding = tuple(draw(st.integers(0, span - 1)) for span in spans)
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    mode = draw(st.sampled_from(MODES))
    source = draw(st.sampled_from(INPUT_DTYPES))
    target = draw(st.sampled_from(OUTPUT_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(source) if source[0] in "iu" else None
    values = (rng.integers(info.min, int(info.max) + 1, shape) if info is not None
              else rng.normal(0, 100, shape)).astype(source)
    keywords = dict(mode=mode, padding=padding, dilation=dilation, ceil_mode=draw(st.booleans()), axes=axes,
                    dtype=None if target is None else np.dtype(target), count_include_pad=draw(st.booleans()),
                    p=draw(st.sampled_from([1.5, 3.0, 400.0])) if mode == "lp" else 2.0)
    return values, window, stride, keywords


def _pooled(values, window, stride, keywords):
    try:
        return pool(values, window, stride, **keywords)
    except PoolError as error:
        return str(error)  # a refused geometry must be refused the same way by every path


def _same(actual, expected, keywords, values):
    if isinstance(expected, str) or isinstance(actual, str):
        assert actual == expected
        return
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    exact = actual.dtype.kind in "biu" or keywords["mode"] in ("max", "min", "median")
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:  # float sums may add in another order (slabs, window by window): cancellation included
        computed = [actual.dtype] + ([values.dtype] if values.dtype.kind == "f" else [])  # float32 inputs: float32
        epsilon = max(np.finfo(dtype).eps for dtype in computed)
        scale = float(np.abs(values.astype(np.float64)).max(initial=1.0)) * 16
        np.testing.assert_allclose(actual, expected, rtol=32 * epsilon, atol=32 * epsilon * scale, equal_nan=True)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_every_shortcut_on_and_off_gives_the_same_result(forced_on, case):
    values, window, stride, keywords = case
    with engine.fast_paths(**{name: False for name in SWITCHES}):
        general = _pooled(values, window, stride, keywords)
    _same(_pooled(values, window, stride, keywords), general, keywords, values)  # every shortcut on
    for name in SWITCHES:  # and each one alone off
        with engine.fast_paths(**{name: False}):
            _same(_pooled(values, window, stride, keywords), general, keywords, values)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_shortcuts_forced_on_agree_with_the_brute_force(forced_on, case):
    values, window, stride, keywords = case
    result = _pooled(values, window, stride, keywords)
    if isinstance(result, str) or keywords["p"] > 100:
        return  # refusals: test_engine_errors.py; huge powers overflow the brute force (see the tests below)
    options = {k: v for k, v in keywords.items() if k != "dtype"}
    expected = pool_ref(values, window, stride, **options)
    if keywords["dtype"] is not None and keywords["dtype"].kind in "iu":
        np.testing.assert_array_equal(result, round_half_up(expected, keywords["dtype"]))
    else:
        scale = float(np.abs(values.astype(np.float64)).max(initial=1.0)) * 16
        single = result.dtype.itemsize <= 4 or values.dtype == np.float32  # float32 inputs compute in float32
        close = dict(rtol=1e-5, atol=1e-6 * scale) if single else dict(rtol=1e-9, atol=1e-9)
        if result.dtype.kind in "iu" or result.dtype == np.bool_:
            np.testing.assert_array_equal(result, round_half_up(expected, result.dtype))
        else:
            np.testing.assert_allclose(result.astype(np.float64), expected, equal_nan=True, **close)


def test_the_reported_ceil_mode_average_is_right_with_opencv_forced_on(forced_on):
    x = (np.arange(9, dtype=np.uint8) * 27).reshape(3, 3)
    assert pool(x, 2, mode="avg", ceil_mode=True, dtype=np.uint8).tolist() == [[54, 95], [176, 216]]


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("odd", [False, True])
def test_opencv_area_means_of_images_equal_the_general_path(forced_on, channels, odd):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (32 + odd, 48 + odd, channels), dtype=np.uint8)
    for ceil_mode in (False, True):
        keywords = dict(mode="avg", axes=(0, 1), dtype=np.uint8, ceil_mode=ceil_mode)
        with engine.fast_paths(opencv_area=False):
            general = pool(image, 2, **keywords)
        assert np.array_equal(pool(image, 2, **keywords), general), (channels, odd, ceil_mode)


def test_scaled_lp_is_the_p_norm_where_the_plain_formula_is_finite():
    """The scaled lp (for powers beyond the float range) against the plain one on ordinary
    powers, by forcing it on."""
    rng = np.random.default_rng(5)
    x = rng.random((12, 15)) * 10
    plan = plan_pool(x.shape, 3, 2, padding=1, mode="lp", p=7.0, ceil_mode=True)
    scaled = sums.scaled_lp(np, x, plan)
    np.testing.assert_allclose(scaled, pool(x, 3, 2, padding=1, mode="lp", p=7.0, ceil_mode=True), rtol=1e-12)


@pytest.mark.parametrize("p", [1e308, 1e5, 1000.0])
def test_lp_with_a_huge_power_is_the_p_norm_not_infinity(p):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    result = pool(x, 2, mode="lp", p=p)
    largest = pool(x, 2, mode="max").astype(np.float64)
    assert np.all(np.isfinite(result))
    assert np.all(result >= largest) and np.all(result <= largest * 4 ** (1 / p) * (1 + 1e-12))
    tiny = rng.random((8, 8)) * 1e-3  # |x|^p underflows: the norm is still the largest |x|
    np.testing.assert_allclose(pool(tiny, 2, mode="lp", p=1e308), pool(tiny, 2, mode="max"), rtol=1e-15)
