"""The median's fast paths against the general path and the brute force (tests/reference.py).

Three ways to the same medians: the general path (every window's stable sort order, what the
backward pass also uses), sorted window values (`median_values`) and counting ranks over tiles
(`median_counts`, engine/ranks.py), plus OpenCV's medianBlur for 8-bit images
(`median_opencv`). The same random geometries (1-D to 3-D, strides, dilation, zero, edge and
reflect padding, ceil mode), dtypes (bool to int64 at its extremes, float16 to float64), NaN under
both policies, -0.0 beside 0.0 and heavy ties must give the same bits on every path.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import pool_ref, round_half_up

from poolcli import engine, pool
from poolcli.errors import PoolError

PATHS = ("median_values", "median_counts", "median_opencv")
DTYPES = ("bool", "uint8", "int8", "uint16", "int32", "int64", "uint64", "float16", "float32", "float64")


@pytest.fixture
def counting(monkeypatch):
    """Every overlapping window is counted, and tiles and tables stay tiny (many tiles, one bin)."""
    monkeypatch.setattr(engine.BUDGETS, "median_count_taps", 0)
    monkeypatch.setattr(engine.BUDGETS, "min_parallel_bytes", 0)
    monkeypatch.setattr(engine.BUDGETS, "chunk_bytes", 64)
    monkeypatch.setenv("POOLCLI_THREADS", "2")


def _values(rng, dtype: str, shape, ties: bool, specials: bool):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = (0, 4) if ties else (int(info.min), int(info.max))
        values = rng.integers(low, high, shape, endpoint=True, dtype=dtype)
        if specials:  # the extremes, where a midpoint could overflow
            values.flat[rng.integers(0, values.size, values.size // 3 + 1)] = info.max
            values.flat[rng.integers(0, values.size, values.size // 4 + 1)] = info.min
        return values
    values = (rng.integers(-3, 4, shape) if ties else rng.normal(0, 100, shape)).astype(dtype)
    if specials:
        for special, share in ((np.nan, 5), (-0.0, 4), (0.0, 4), (np.inf, 9), (-np.inf, 9)):
            values.flat[rng.integers(0, values.size, values.size // share + 1)] = special
    return values


@st.composite
def cases(draw):
    m = draw(st.sampled_from([1, 2, 2, 2, 3]))
    batch = draw(st.sampled_from([(), (2,)]))
    sizes = tuple(draw(st.integers(1, {1: 40, 2: 14, 3: 6}[m])) for _ in range(m))
    window = tuple(draw(st.integers(1, {1: 12, 2: 6, 3: 3}[m])) for _ in range(m))
    dilation = tuple(draw(st.sampled_from([1, 1, 1, 2])) for _ in range(m))
    spans = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    padding = tuple(draw(st.integers(0, span - 1)) for span in spans)
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = _values(rng, dtype, batch + sizes, draw(st.booleans()), draw(st.booleans()))
    requested = draw(st.sampled_from([None, None, "float64", "int16", "uint8"]))
    keywords = dict(mode="median", padding=padding, dilation=dilation, ceil_mode=draw(st.booleans()),
                    pad_mode=draw(st.sampled_from(["zeros", "zeros", "edge", "reflect"])),
                    nan_policy=draw(st.sampled_from(["propagate", "omit"])),
                    axes=tuple(range(len(batch), len(batch) + m)), dtype=requested)
    stride = tuple(draw(st.integers(1, 3)) for _ in range(m))
    return values, window, stride, keywords


def _pooled(values, window, stride, keywords):
    try:
        return pool(values, window, stride, **keywords)
    except PoolError as error:
        return str(error)


def _same_bits(actual, expected):
    if isinstance(expected, str) or isinstance(actual, str):
        assert actual == expected
        return
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes(), (actual, expected)  # -0.0 and 0.0 differ here


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_every_median_path_gives_the_general_paths_bits(counting, case):
    values, window, stride, keywords = case
    with engine.fast_paths(**{name: False for name in PATHS}):
        general = _pooled(values, window, stride, keywords)
    _same_bits(_pooled(values, window, stride, keywords), general)
    for name in PATHS:  # each alone
        with engine.fast_paths(**{other: other == name for other in PATHS}):
            _same_bits(_pooled(values, window, stride, keywords), general)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_fast_medians_agree_with_the_brute_force(counting, case):
    values, window, stride, keywords = case
    if values.dtype.itemsize == 8 and values.dtype.kind in "iu":
        values = values >> 12  # the brute force averages in float64
    result = _pooled(values, window, stride, keywords)
    if isinstance(result, str):
        return
    options = {k: v for k, v in keywords.items() if k != "dtype"}
    expected = pool_ref(values, window, stride, **options)
    if result.dtype.kind in "biu":
        np.testing.assert_array_equal(result, round_half_up(expected, result.dtype))
    else:
        np.testing.assert_allclose(result.astype(np.float64), expected.astype(result.dtype), rtol=0, atol=0,
                                   equal_nan=True)


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int64"])
def test_large_windows_are_counted_exactly(dtype):
    """The counted path at its own thresholds (no budget lowered): 20x20 windows over 60x70."""
    rng = np.random.default_rng(3)
    x = _values(rng, dtype, (60, 70), ties=False, specials=dtype == "float32")
    for keywords in (dict(padding=7), dict(padding=(3, 9), ceil_mode=True), dict(nan_policy="omit")):
        with engine.fast_paths(median_counts=False, median_values=False, median_opencv=False):
            general = pool(x, 20, (1, 3), mode="median", **keywords)
        _same_bits(pool(x, 20, (1, 3), mode="median", **keywords), general)


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("window", [3, 5, 7])
def test_opencv_median_blur_gives_the_general_paths_bits(channels, window):
    rng = np.random.default_rng(window)
    shape = (41, 37) if channels is None else (41, 37, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    for keywords in (dict(), dict(padding=window // 2, pad_mode="edge"), dict(padding=window // 2),
                     dict(padding=1, pad_mode="reflect", ceil_mode=True), dict(dtype=np.float64)):
        for stride in (1, 2, 3):
            with engine.fast_paths(median_counts=False, median_values=False, median_opencv=False):
                general = pool(image, window, stride, mode="median", axes=(0, 1), **keywords)
            _same_bits(pool(image, window, stride, mode="median", axes=(0, 1), **keywords), general)
