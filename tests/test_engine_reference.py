"""The engine against the brute-force reference (tests/reference.py) where PyTorch has no answer.

min, sum, l2, median, asymmetric and large pads, 'same'/'valid', edge/reflect padding,
nan_policy, pooling over any axes, adaptive pooling in every mode, and the backward pass
of every mode; plus finite differences, which check the backward formulas themselves.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import (
    adaptive_ref,
    assert_array,
    expected_dtype,
    output_shape_ref,
    padding_only_windows,
    plan,
    pool_backward_ref,
    pool_ref,
    round_half_up,
)

from poolcli import PoolError, adaptive_pool, engine, output_shape, pool, pool_backward

FIXED = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
MODES = ("max", "min", "avg", "sum", "l2", "lp", "median")
SUM_LIKE = ("avg", "sum", "l2", "lp")


@st.composite
def cases(draw, modes=MODES, *, data_kinds=("float", "nan", "int"), invalid=False):
    """A random array, pooled axes and every keyword of pool(); valid unless `invalid`."""
    ndim = draw(st.integers(1, 4), label="ndim")
    m = draw(st.sampled_from(range(1, min(3, ndim) + 1)), label="pooled")
    order = draw(st.permutations(range(ndim)), label="order")
    pooled = order[:m]
    windows = [draw(st.integers(1, 3)) for _ in pooled]
    dilations = [draw(st.integers(1, 2)) for _ in pooled]
    strides = [draw(st.integers(1, 3)) for _ in pooled]
    spans = [d * (k - 1) + 1 for k, d in zip(windows, dilations, strict=True)]
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    for axis, span in zip(pooled, spans, strict=True):
        shape[axis] = draw(st.integers(1, span + 4))
    style = draw(st.sampled_from(["int", "per-axis", "pairs", "same", "valid"]), label="padding style")
    limit = min(spans) - 1
    if style == "int":
        padding = draw(st.integers(0, limit + (1 if invalid else 0)))
    elif style == "per-axis":
        padding = tuple(draw(st.integers(0, span - 1)) for span in spans)
    elif style == "pairs":
        padding = tuple((draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1)))
                        for span in spans)
    else:
        padding = style
    mode = draw(st.sampled_from(modes), label="mode")
    keywords = dict(mode=mode, padding=padding, ceil_mode=draw(st.booleans(), label="ceil"),
                    pad_mode=draw(st.sampled_from(["zeros", "edge", "reflect"]), label="pad_mode"),
                    nan_policy=draw(st.sampled_from(["propagate", "omit"]), label="nan_policy"))
    if draw(st.booleans(), label="int windows"):  # an int applies to every pooled axis
        windows, strides, dilations = windows[0], strides[0], dilations[0]
        spans = [dilations * (windows - 1) + 1] * m
        if isinstance(padding, int) and padding > spans[0] - 1 and not invalid:
            keywords["padding"] = spans[0] - 1
        elif isinstance(padding, tuple):
            keywords["padding"] = tuple(pad if isinstance(pad, int) else tuple(pad)
                                        for pad in _clip_pads(padding, spans[0] - 1))
    keywords.update(dilation=dilations if isinstance(dilations, int) else tuple(dilations))
    if mode in ("avg", "l2"):
        keywords["count_include_pad"] = draw(st.booleans(), label="count_include_pad")
        keywords["divisor_override"] = draw(st.none() | st.integers(1, 5), label="divisor")
    if mode == "lp":
        keywords["p"] = draw(st.sampled_from([0.5, 1, 1.5, 2.0, 3.0]), label="p")
    axes_style = draw(st.sampled_from(["given", "negative", "default"]), label="axes")
    window_arg = windows if isinstance(windows, int) else tuple(windows)
    if axes_style == "default":
        if isinstance(window_arg, int) and m != min(2, ndim):
            axes_style = "given"
        else:
            pooled = list(range(ndim - m, ndim))
    if axes_style != "default":
        keywords["axes"] = tuple(a - ndim if axes_style == "negative" else a for a in pooled)
    kind = draw(st.sampled_from(data_kinds), label="data")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    if kind == "int":
        x = rng.integers(-4, 5, size=shape).astype(np.int16)  # plenty of ties
    else:
        x = rng.normal(size=shape)
        if kind == "nan":
            x[rng.random(size=shape) < 0.3] = np.nan
    return x, window_arg, (tuple(strides) if isinstance(strides, list) else strides), keywords


def _clip_pads(padding, limit):
    for pad in padding:
        yield min(pad, limit) if isinstance(pad, int) else (min(pad[0], limit), min(pad[1], limit))


def _geometry(x, window, stride, keywords):
    return plan(x.shape, window, stride, padding=keywords["padding"],
                dilation=keywords["dilation"], ceil_mode=keywords["ceil_mode"],
                axes=keywords.get("axes"))


def _valid(rows) -> bool:
    return all(row["out"] >= 1 and not padding_only_windows(row) for row in rows)


def _pads_fit(rows) -> bool:
    return all(max(row["lo"], row["hi"]) <= row["d"] * (row["k"] - 1) for row in rows)


def _expected(x, values, mode):
    want = expected_dtype(x.dtype, mode)
    return (round_half_up(values, want) if want.kind in "biu" else values), want


@FIXED
@given(case=cases())
def test_pool_matches_reference(case):
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        with pytest.raises(PoolError):
            pool(x, window, stride, **keywords)
        return
    mode = keywords["mode"]
    expected, want = _expected(x, pool_ref(x, window, stride, **keywords), mode)
    assert output_shape(x.shape, window, stride, **keywords) == expected.shape
    assert_array(pool(x, window, stride, **keywords), expected, want, rtol=1e-12, atol=1e-12)
    if mode in ("max", "min"):
        y, idx = pool(x, window, stride, return_indices=True, **keywords)
        y_ref, idx_ref = pool_ref(x, window, stride, return_indices=True, **keywords)
        assert_array(y, _expected(x, y_ref, mode)[0], want)
        if x.dtype.kind == "f" and keywords["nan_policy"] == "propagate":
            keep = ~np.isnan(y_ref)  # which NaN an index names is PyTorch's business
            assert_array(idx[keep], idx_ref[keep], np.int64)
        else:
            assert_array(idx, idx_ref, np.int64)


@FIXED
@given(case=cases(invalid=True, data_kinds=("float",)))
def test_invalid_geometry_is_a_pool_error(case):
    """Pads over k_eff-1, windows beyond the padded input, windows of padding alone."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if _pads_fit(rows) and _valid(rows):
        assert output_shape(x.shape, window, stride, **keywords) == output_shape_ref(
            x.shape, window, stride, padding=keywords["padding"], dilation=keywords["dilation"],
            ceil_mode=keywords["ceil_mode"], axes=keywords.get("axes"))
        return
    for call in (lambda: pool(x, window, stride, **keywords),
                 lambda: output_shape(x.shape, window, stride, **keywords)):
        with pytest.raises(PoolError) as info:
            call()
        assert any(word in str(info.value) for word in ("padding", "window"))


@FIXED
@given(case=cases(data_kinds=("float", "nan")))
def test_backward_matches_reference(case):
    """SPEC's backward formulas, window by window; NaNs only where they are skipped."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    if keywords["nan_policy"] == "propagate":
        x = np.where(np.isnan(x), 0.5, x)
    if keywords["mode"] not in ("max", "min"):  # distinct values: no tie decides the routing
        finite = ~np.isnan(x)
        x[finite] = np.random.default_rng(0).permutation(int(finite.sum())) / 7 - 1
    y_shape = output_shape_ref(x.shape, window, stride, padding=keywords["padding"],
                               dilation=keywords["dilation"], ceil_mode=keywords["ceil_mode"],
                               axes=keywords.get("axes"))
    grad = np.random.default_rng(1).normal(size=y_shape)
    expected = pool_backward_ref(grad, x, window, stride, **keywords)
    assert_array(pool_backward(grad, x, window, stride, **keywords), expected, np.float64,
                 rtol=1e-10, atol=1e-12)


@FIXED
@given(case=cases(modes=("avg", "sum", "l2", "lp", "median", "max"), data_kinds=("float",)))
def test_backward_is_the_derivative(case):
    """Central finite differences of <grad, pool(x)> along a random direction."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    mode = keywords["mode"]
    rng = np.random.default_rng(2)
    x = (rng.permutation(x.size).reshape(x.shape) + 1.0) / x.size  # distinct, > 0
    if mode == "lp" and keywords["p"] < 1:
        keywords["p"] = 1.5  # |x|^p with p < 1 is too curved for a finite difference
    grad = rng.normal(size=pool(x, window, stride, **keywords).shape)
    direction = rng.normal(size=x.shape)
    eps = 1e-7 if mode in ("max", "median") else 1e-5

    def loss(values):
        return float(np.sum(grad * pool(values, window, stride, **keywords)))

    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    analytic = float(np.sum(direction * pool_backward(grad, x, window, stride, **keywords)))
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6)


@FIXED
@given(data=st.data())
def test_adaptive_matches_reference(data):
    ndim = data.draw(st.integers(1, 4), label="ndim")
    shape = data.draw(st.tuples(*[st.integers(1, 6)] * ndim), label="shape")
    m = data.draw(st.integers(1, min(3, ndim)), label="pooled")
    axes = data.draw(st.permutations(range(ndim)), label="order")[:m]
    sizes = tuple(data.draw(st.none() | st.integers(1, shape[a] + 1)) for a in axes)
    mode = data.draw(st.sampled_from(MODES), label="mode")
    nan_policy = data.draw(st.sampled_from(["propagate", "omit"]), label="nan_policy")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.normal(size=shape)
    x[rng.random(size=shape) < 0.2] = np.nan
    keywords = dict(mode=mode, axes=axes, nan_policy=nan_policy)
    if mode == "lp":
        keywords["p"] = 3.0
    expected = adaptive_ref(x, sizes, **keywords)
    assert_array(adaptive_pool(x, sizes, **keywords), expected, np.float64, rtol=1e-12, atol=1e-12)
    if mode in ("max", "min") and nan_policy == "omit":
        y, idx = adaptive_pool(x, sizes, return_indices=True, **keywords)
        assert_array(idx, adaptive_ref(x, sizes, return_indices=True, **keywords)[1], np.int64)


# ---------------------------------------------------------------- named cases


HWC = np.random.default_rng(7).integers(0, 256, size=(7, 9, 3)).astype(np.uint8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes", [(0, 1), (-3, -2), (1, 0), (0, 2), (-1, 0)])
def test_hwc_image_over_any_axes(mode, axes):
    keywords = dict(mode=mode, axes=axes, padding=1, ceil_mode=True)
    y = pool(HWC, (3, 2), 2, **keywords)
    expected, want = _expected(HWC, pool_ref(HWC, (3, 2), 2, **keywords), mode)
    assert_array(y, expected, want)
    grad = np.ones(y.shape)
    assert_array(pool_backward(grad, HWC, (3, 2), 2, **keywords),
                 pool_backward_ref(grad, HWC, (3, 2), 2, **keywords), np.float64, rtol=1e-12)


@pytest.mark.parametrize("mode", ["avg", "max", "median"])
def test_hwc_axes_0_1_equals_pooling_each_channel(mode):
    """Each channel on its own, by plain slicing: a 3x3 window every 2 rows and columns."""
    reduce = {"avg": np.mean, "max": np.max, "median": np.median}[mode]
    expected = np.empty((3, 4, 3))
    for i, j, channel in np.ndindex(expected.shape):
        expected[i, j, channel] = reduce(HWC[2 * i : 2 * i + 3, 2 * j : 2 * j + 3, channel].astype(np.float64))
    want = expected_dtype(HWC.dtype, mode)  # uint8 for max and median (9 taps: a middle element), float64 for avg
    assert_array(pool(HWC, 3, 2, axes=(0, 1), mode=mode), expected.astype(want), want)


@pytest.mark.parametrize(
    ("x", "expected"),
    [([1.0, 2.0, 3.0, 4.0], [2.5]), ([4.0, 1.0, 3.0], [3.0]), ([np.nan, 1.0, 2.0, 9.0], [np.nan])],
)
def test_median_even_counts_average_the_middle_two(x, expected):
    assert_array(pool(np.array(x), len(x), mode="median"), expected, np.float64)


def test_median_ignores_padding():
    """scikit-image's anti-pattern: a mostly-padding block must not give 0."""
    x = np.array([[5.0, 7.0], [9.0, 11.0]])
    y = pool(x, 3, 2, padding=2, mode="median")  # windows {5}, {5, 7}, {5, 9}, {5, 7, 9, 11}
    assert_array(y, [[5.0, 6.0], [7.0, 8.0]], np.float64)
    assert_array(pool(x, 3, 1, padding=1, mode="median"),
                 pool_ref(x, 3, 1, padding=1, mode="median"), np.float64)


@pytest.mark.parametrize(
    ("pad_mode", "expected"),
    [("zeros", [1.0, 2.5, 4.0, 5.0]), ("edge", [1.0, 2.5, 4.0, 5.0]),
     ("reflect", [2.5, 2.5, 4.0, 5.0])],
)
def test_pad_modes_for_max(pad_mode, expected):
    """[1, 2.5, 4, 5], k=2 s=1 padding (1, 0): the pad is ignored, 1 (edge) or 2.5 (reflect)."""
    x = np.array([1.0, 2.5, 4.0, 5.0])
    y = pool(x, 2, 1, padding=((1, 0),), pad_mode=pad_mode)
    assert_array(y, pool_ref(x, 2, 1, padding=((1, 0),), pad_mode=pad_mode), np.float64)
    assert_array(y, expected, np.float64)


@pytest.mark.parametrize("pad_mode", ["edge", "reflect"])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_real_padding_counts_in_every_divisor(pad_mode, count_include_pad):
    x = np.array([1.0, 2.0, 3.0, 6.0])
    y = pool(x, 3, 3, padding=1, mode="avg", pad_mode=pad_mode, count_include_pad=count_include_pad)
    padded = np.pad(x, 1, mode=pad_mode)
    assert_array(y, [padded[0:3].mean(), padded[3:6].mean()], np.float64, rtol=1e-15)


@pytest.mark.parametrize(
    ("mode", "omit", "propagate"),
    [("max", [2.0, 4.0, np.nan], [np.nan, 4.0, np.nan]),
     ("min", [2.0, 3.0, np.nan], [np.nan, 3.0, np.nan]),
     ("sum", [2.0, 7.0, np.nan], [np.nan, 7.0, np.nan]),
     ("avg", [2.0, 3.5, np.nan], [np.nan, 3.5, np.nan]),
     ("median", [2.0, 3.5, np.nan], [np.nan, 3.5, np.nan]),
     ("l2", [2.0, np.sqrt(12.5), np.nan], [np.nan, np.sqrt(12.5), np.nan]),
     ("lp", [2.0, 5.0, np.nan], [np.nan, 5.0, np.nan])],
)
def test_nan_policy(mode, omit, propagate):
    """Windows [nan, 2], [3, 4], [nan, nan]: omitted NaNs leave the divisor too."""
    x = np.array([np.nan, 2.0, 3.0, 4.0, np.nan, np.nan])
    keywords = dict(mode=mode, p=2) if mode == "lp" else dict(mode=mode)
    assert_array(pool(x, 2, nan_policy="omit", **keywords), omit, np.float64, rtol=1e-15)
    assert_array(pool(x, 2, **keywords), propagate, np.float64, rtol=1e-15)
    assert_array(pool(x, 2, nan_policy="omit", **keywords),
                 pool_ref(x, 2, nan_policy="omit", **keywords), np.float64, rtol=1e-15)


@pytest.mark.parametrize(
    ("n", "window", "stride", "pads"),
    [(4, 2, 1, (0, 1)), (5, 3, 2, (1, 1)), (6, 3, 2, (0, 1)), (7, 4, 3, (1, 2)), (1, 3, 1, (1, 1)),
     (8, 1, 3, (0, 0)), (5, 5, 1, (2, 2))],
)
def test_same_padding_is_tensorflows(n, window, stride, pads):
    assert output_shape((n,), window, stride, padding="same") == (-(-n // stride),)
    x = np.random.default_rng(n).normal(size=n)
    np.testing.assert_array_equal(pool(x, window, stride, padding="same", mode="sum"),
                                  pool(x, window, stride, padding=(pads,), mode="sum"))
    assert_array(pool(x, window, stride, padding="same", mode="sum"),
                 pool_ref(x, window, stride, padding=(pads,), mode="sum"), np.float64, rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_pads_up_to_span_minus_1(mode):
    """Beyond PyTorch's k/2: pads of k_eff-1 on one side, asymmetric, with dilation."""
    x = np.random.default_rng(11).normal(size=(2, 5, 6))
    keywords = dict(mode=mode, dilation=(1, 2), padding=((2, 0), (0, 4)), ceil_mode=True)
    y = pool(x, 3, (2, 1), **keywords)
    assert_array(y, pool_ref(x, 3, (2, 1), **keywords), np.float64, rtol=1e-12)


def test_lp_with_ceil_overhang_is_the_true_norm():
    """Not torch's avg*k^2: the overhanging window [4, 5] gives sqrt(16+25)."""
    x = np.arange(1.0, 6.0)
    y = pool(x, 2, 2, mode="lp", p=2, ceil_mode=True)
    assert_array(y, [np.sqrt(5), np.sqrt(25), 5.0], np.float64, rtol=1e-15)
    assert_array(y, pool_ref(x, 2, 2, mode="lp", p=2, ceil_mode=True), np.float64, rtol=1e-15)


@pytest.mark.parametrize("mode", ["l2", "median"])
def test_backward_formulas_by_hand(mode):
    x = np.array([3.0, 4.0, 1.0, 2.0])
    grad = pool_backward(np.array([1.0, 2.0]), x, 2, mode=mode)
    if mode == "l2":  # x_i / (divisor * y)
        y = np.sqrt([12.5, 2.5])
        expected = [3 / (2 * y[0]), 4 / (2 * y[0]), 2 * 1 / (2 * y[1]), 2 * 2 / (2 * y[1])]
    else:  # half to each of the two middle cells
        expected = [0.5, 0.5, 1.0, 1.0]
    assert_array(grad, expected, np.float64, rtol=1e-15)
    grad = pool_backward(np.array([6.0]), np.array([5.0, 1.0, 3.0]), 3, mode="median")
    assert_array(grad, [0.0, 0.0, 6.0], np.float64)
    assert_array(pool_backward(np.ones(1), np.zeros(2), 2, mode="l2"), [0.0, 0.0], np.float64)


@contextlib.contextmanager
def parallel_slabs():
    """Force the threaded path: every input is split into slabs of one output row."""
    budgets = engine.BUDGETS
    saved = budgets.min_parallel_bytes, budgets.chunk_bytes, os.environ.get("POOLCLI_THREADS")
    budgets.min_parallel_bytes, budgets.chunk_bytes = 0, 1
    os.environ["POOLCLI_THREADS"] = "2"
    try:
        yield
    finally:
        budgets.min_parallel_bytes, budgets.chunk_bytes = saved[0], saved[1]
        if saved[2] is None:
            os.environ.pop("POOLCLI_THREADS", None)
        else:
            os.environ["POOLCLI_THREADS"] = saved[2]


@FIXED
@given(case=cases())
def test_parallel_slabs_match_reference(case):
    """The threaded slab path (large inputs) gives what the brute force gives."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    expected, want = _expected(x, pool_ref(x, window, stride, **keywords), keywords["mode"])
    with parallel_slabs():
        actual = pool(x, window, stride, **keywords)
    assert_array(actual, expected, want, rtol=1e-12, atol=1e-12)


@FIXED
@given(case=cases(modes=("avg",), data_kinds=("int",)), slabs=st.booleans(), channels=st.integers(1, 5))
def test_integer_average_rounds_half_up(case, slabs, channels):
    """avg of integers to an integer dtype (exact integer rounding), also channels-last."""
    x, window, stride, keywords = case
    x = np.repeat((x + 4).astype(np.uint8)[..., None], channels, axis=-1) * np.arange(1, channels + 1, dtype=np.uint8)
    if "axes" not in keywords:  # the trailing channel axis is new: name the pooled axes
        count = len(window) if isinstance(window, tuple) else min(2, x.ndim - 1)
        keywords["axes"] = tuple(range(x.ndim - 1 - count, x.ndim - 1))
    else:
        keywords["axes"] = tuple(a % (x.ndim - 1) for a in keywords["axes"])
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    expected = round_half_up(pool_ref(x, window, stride, **keywords), np.dtype(np.uint8))
    with parallel_slabs() if slabs else contextlib.nullcontext():
        actual = pool(x, window, stride, dtype=np.uint8, **keywords)
    assert_array(actual, expected, np.uint8)
