"""The engine against SPEC.md: worked examples, dtype rules and the no-loop-over-outputs rule.

PyTorch comparisons live in test_engine_torch.py, brute-force comparisons over random
geometries in test_engine_reference.py, parameter errors in test_engine_errors.py.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from reference import adaptive_ref, assert_array, expected_dtype, pool_backward_ref, pool_ref, round_half_up

import poolcli
import poolcli.engine
import poolcli.engine.taps
from poolcli import adaptive_pool, output_shape, pool, pool_backward, unpool
from poolcli.core.geometry import plan_pool

MODES = ("max", "min", "avg", "sum", "l2", "lp", "median")

# ---------------------------------------------------------------- SPEC's worked examples

A25 = np.arange(25).reshape(5, 5)
B9 = np.arange(1, 10).reshape(3, 3)

WORKED = [
    pytest.param(A25, dict(window=2, stride=2), [[6, 8], [16, 18]], id="max-k2s2"),
    pytest.param(A25, dict(window=2, stride=2, ceil_mode=True),
                 [[6, 8, 9], [16, 18, 19], [21, 23, 24]], id="max-k2s2-ceil"),
    pytest.param([1, 2, 3, 4, 5], dict(window=3, stride=3, padding=1, ceil_mode=True), [2, 5],
                 id="max-k3s3p1-ceil-no-window-in-right-pad"),
    pytest.param([[-1, -2], [-3, -4]], dict(window=2, stride=1, padding=1),
                 [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]], id="max-padding-never-wins"),
    pytest.param(B9, dict(window=3, stride=2, padding=1, mode="avg"),
                 np.array([[12, 16], [24, 28]]) / 9, id="avg-include-pad"),
    pytest.param(B9, dict(window=3, stride=2, padding=1, mode="avg", count_include_pad=False),
                 [[3, 4], [6, 7]], id="avg-exclude-pad"),
    pytest.param([1, 5, 2, 6, 3, 7, 4], dict(window=3, stride=1, dilation=2), [3, 7, 4],
                 id="max-dilation"),
    pytest.param([4, 3, 2, 1], dict(window=2, stride=1, padding="same"), [4, 3, 2, 1],
                 id="max-same"),
    pytest.param([4, 3, 2, 1], dict(window=2, stride=1, padding=((0, 1),)), [4, 3, 2, 1],
                 id="max-same-is-pads-0-1"),
    pytest.param([3.0, 4.0], dict(window=2, mode="l2"), [np.sqrt(12.5)], id="l2"),
    pytest.param([3.0, 4.0], dict(window=2, mode="lp", p=2), [5.0], id="lp"),
]


@pytest.mark.parametrize(("x", "keywords", "expected"), WORKED)
def test_worked_example(x, keywords, expected):
    x = np.asarray(x)
    y = pool(x, **keywords)
    mode = keywords.get("mode", "max")
    assert_array(y, expected, expected_dtype(x.dtype, mode))


def test_worked_example_l2_value():
    assert pool(np.array([3.0, 4.0]), 2, mode="l2")[0] == pytest.approx(3.5355339059327378, abs=1e-15)


@pytest.mark.parametrize(("n", "k", "s", "d", "pads"), [
    (4, 2, 1, 1, (0, 1)),  # the odd cell goes to the end
    (6, 3, 2, 1, (0, 1)),
    (5, 4, 1, 1, (1, 2)),
    (7, 3, 1, 2, (2, 2)),  # k_eff = 5
    (8, 2, 2, 1, (0, 0)),
])
def test_worked_example_same_pads(n, k, s, d, pads):
    """TensorFlow's rule, pad by pad: total = max((ceil(n/s)-1)s + k_eff - n, 0), lo = total // 2."""
    (geometry,) = plan_pool((n,), k, s, dilation=d, padding="same").sliding
    assert (geometry.pad_lo, geometry.pad_hi, geometry.out) == (*pads, -(-n // s))
    x = np.arange(1.0, n + 1)
    expected = pool_ref(x, k, s, dilation=d, padding=(pads,), mode="sum")  # zeros padded where the split says
    assert_array(pool(x, k, s, dilation=d, padding="same", mode="sum"), expected, np.float64)


def test_worked_example_backward_of_max():
    grad = pool_backward(np.ones(5), np.array([1.0, 3, 2, 3, 5, 5]), 2, 1)
    assert_array(grad, [0, 2, 0, 1, 2, 0], np.float64)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("max", [1, 3, 4]), ("min", [0, 1, 3]), ("avg", [0.5, 2, 3.5]), ("sum", [1, 6, 7])],
)
def test_worked_example_adaptive_bins_5_to_3(mode, expected):
    """5 -> 3 bins: [0,2), [1,4), [3,5)."""
    x = np.arange(5.0)
    assert_array(adaptive_pool(x, 3, mode=mode), expected, np.float64)
    assert_array(adaptive_pool(x, 3, mode=mode), adaptive_ref(x, 3, mode=mode), np.float64)


def test_adaptive_output_size_1_is_global_pooling():
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 5))
    assert_array(adaptive_pool(x, 1), x.mean(axis=(2, 3), keepdims=True), np.float64, rtol=1e-14)
    assert_array(adaptive_pool(x, 1, mode="max"), x.max(axis=(2, 3), keepdims=True), np.float64)
    assert_array(adaptive_pool(x, (None, 1), mode="min"), x.min(axis=3, keepdims=True), np.float64)


def test_worked_examples_hold_in_the_reference_too():
    """The brute force agrees with SPEC's examples, so disagreements elsewhere are the engine's."""
    for param in WORKED:
        x, keywords, expected = param.values
        keywords = dict(keywords)
        np.testing.assert_allclose(pool_ref(np.asarray(x), keywords.pop("window"), **keywords),
                                   expected, rtol=1e-15)
    np.testing.assert_array_equal(
        pool_backward_ref(np.ones(5), np.array([1.0, 3, 2, 3, 5, 5]), 2, 1), [0, 2, 0, 1, 2, 0]
    )


def test_public_surface():
    assert set(poolcli.__all__) >= {"pool", "adaptive_pool", "pool_backward", "unpool",
                                    "output_shape", "PoolError"}
    assert issubclass(poolcli.PoolError, ValueError)


def test_default_axes():
    """Tuple window: its last len(window) axes; int window: the last 2 (the only one in 1-D)."""
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)
    assert pool(x, 2).shape == (2, 3, 2, 3)
    assert pool(x, (2,)).shape == (2, 3, 4, 3)
    assert pool(x, (1, 2, 2)).shape == (2, 3, 2, 3)
    assert pool(np.arange(6), 2).shape == (3,)
    assert_array(pool(x, (2, 2, 2), mode="sum"), pool_ref(x, (2, 2, 2), mode="sum"), np.float64)


# ---------------------------------------------------------------- dtype rules

INPUT_DTYPES = ("uint8", "uint16", "int16", "int32", "bool", "float16", "float32", "float64")


def _sample(dtype: str, shape, seed: int = 0) -> np.ndarray:
    """Values that exercise the dtype: its extremes, ties, and for floats negatives."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
        values = rng.integers(low, high, size=shape, endpoint=True)
        values.flat[::7] = high
        values.flat[3::11] = low
        return values.astype(dtype)
    return rng.normal(scale=3.0, size=shape).astype(dtype)


def _tolerance(dtype) -> dict:
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return dict(rtol=2e-3, atol=2e-3)
    if dtype == np.float32:
        return dict(rtol=2e-6, atol=1e-6)
    return dict(rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", INPUT_DTYPES)
def test_output_dtype_and_values_for_every_input_dtype(dtype, mode):
    x = _sample(dtype, (2, 5, 6))
    y = pool(x, (3, 2), (2, 2), mode=mode, padding=1, ceil_mode=True)
    want = expected_dtype(dtype, mode)
    expected = pool_ref(x, (3, 2), (2, 2), mode=mode, padding=1, ceil_mode=True)
    if want.kind in "biu":
        expected = round_half_up(expected, want)
    elif np.dtype(dtype).kind == "f":  # the reference sees the rounded float16/32 input exactly
        expected = expected.astype(want).astype(np.float64)
    assert_array(y, expected, want, **_tolerance(want))


def test_sum_dtypes_follow_numpy():
    assert pool(np.ones((2, 2), np.uint8), 2, mode="sum").dtype == np.uint64
    assert pool(np.ones((2, 2), np.int16), 2, mode="sum").dtype == np.int64
    assert pool(np.ones((2, 2), bool), 2, mode="sum").dtype == np.int64
    assert pool(np.ones((2, 2), np.float16), 2, mode="sum").dtype == np.float16
    assert pool(np.ones((2, 2), np.float32), 2, mode="sum").dtype == np.float32


@pytest.mark.parametrize("mode", ["avg", "l2", "lp"])
def test_float16_computes_in_float32(mode):
    """A float16 accumulation of 4096 values would drift; float32 does not."""
    x = np.full((64, 64), 1.1, np.float16)
    y = pool(x, 64, mode=mode)
    assert y.dtype == np.float16
    expected = pool_ref(x, 64, mode=mode)
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=1e-3)


@pytest.mark.parametrize(
    ("block", "mode", "expected"),
    [
        ([[2, 3], [2, 3]], "avg", 3),  # 2.5 rounds half up
        ([[255, 255], [255, 255]], "avg", 255),  # never overflows
        ([[255, 255], [255, 255]], "sum", 255),  # clipped
        ([[255, 255], [255, 255]], "l2", 255),
        ([[255, 255], [255, 255]], "lp", 255),  # 510 clipped
        ([[1, 2], [3, 4]], "median", 3),  # 2.5 -> 3
        ([[1, 2], [2, 4]], "avg", 2),  # 2.25 -> 2
        ([[1, 2], [2, 5]], "avg", 3),  # 2.5 -> 3
        ([[0, 0], [0, 1]], "avg", 0),  # 0.25 -> 0
        ([[0, 1], [1, 1]], "l2", 1),
    ],
)
def test_uint8_output_rounds_half_up_and_clips(block, mode, expected):
    y = pool(np.array(block, np.uint8), 2, mode=mode, dtype=np.uint8)
    assert_array(y, [[expected]], np.uint8)


def test_uint8_avg_of_big_blocks_accumulates_wide():
    x = np.full((1, 1, 32, 32), 255, np.uint8)
    assert_array(pool(x, 32, mode="avg", dtype=np.uint8), np.full((1, 1, 1, 1), 255), np.uint8)
    assert_array(pool(x, 32, mode="avg"), np.full((1, 1, 1, 1), 255.0), np.float64)
    assert_array(pool(x, 32, mode="sum"), np.full((1, 1, 1, 1), 255 * 1024), np.uint64)
    x16 = np.full((16, 16), -32768, np.int16)
    assert_array(pool(x16, 16, mode="sum"), [[-32768 * 256]], np.int64)
    assert_array(pool(x16, 16, mode="avg", dtype=np.int16), [[-32768]], np.int16)


@pytest.mark.parametrize(("value", "expected"), [(-2.5, -2), (-2.4, -2), (-2.6, -3), (2.5, 3), (0.5, 1)])
def test_signed_output_rounds_half_up(value, expected):
    y = pool(np.array([value, value]), 2, mode="avg", dtype=np.int16)
    assert_array(y, [expected], np.int16)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("requested", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("source", ["uint8", "int16", "float64"])
def test_requested_dtype_for_every_mode(source, requested, mode):
    rng = np.random.default_rng(3)
    if source == "float64":
        x = rng.normal(scale=300.0, size=(6, 7))
        x[0, :3] = [0.5, 1.5, 2.5]
    else:
        x = _sample(source, (6, 7), seed=3)
    y = pool(x, 2, 1, mode=mode, padding=1, dtype=requested)
    expected = pool_ref(x, 2, 1, mode=mode, padding=1)
    if np.dtype(requested).kind in "iu":
        expected = round_half_up(expected, requested)
    assert_array(y, expected, requested, **_tolerance(requested))


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64, object, "U3", "S3", "datetime64[s]"])
@pytest.mark.parametrize("function", ["pool", "adaptive_pool", "pool_backward"])
def test_unpoolable_input_dtypes_are_refused(dtype, function):
    x = np.zeros((4, 4), dtype=dtype)
    call = {
        "pool": lambda: pool(x, 2),
        "adaptive_pool": lambda: adaptive_pool(x, 2),
        "pool_backward": lambda: pool_backward(np.ones((2, 2)), x, 2),
    }[function]
    with pytest.raises(poolcli.PoolError, match="input dtype"):
        call()


def test_bool_input():
    x = np.array([[True, False, False, False], [False, False, True, True]])
    assert_array(pool(x, 2), [[True, True]], bool)
    assert_array(pool(x, 2, mode="min"), [[False, False]], bool)
    assert_array(pool(x, 2, mode="median"), [[False, True]], bool)  # 0.25 -> 0, 0.5 -> 1
    assert_array(pool(x, 2, mode="sum"), [[1, 2]], np.int64)
    assert_array(pool(x, 2, mode="avg"), [[0.25, 0.5]], np.float64)


def test_return_indices_values_keep_the_dtype():
    x = _sample("uint8", (5, 5))
    y, idx = pool(x, 2, return_indices=True, ceil_mode=True)
    y_ref, idx_ref = pool_ref(x, 2, return_indices=True, ceil_mode=True)
    assert_array(y, y_ref, np.uint8)
    assert_array(idx, idx_ref, np.int64)
    y, _ = pool(x, 2, mode="min", return_indices=True, dtype=np.float32)
    assert_array(y, pool_ref(x, 2, mode="min"), np.float32)


def test_unpool_keeps_dtype_and_inverts():
    x = np.random.default_rng(1).permutation(36).reshape(1, 6, 6).astype(np.int16)
    y, idx = pool(x, 3, return_indices=True)
    back = unpool(y, idx, x.shape)
    expected = np.where(x == pool(x, 3).repeat(3, 1).repeat(3, 2), x, 0)
    assert_array(back, expected, np.int16)
    assert_array(unpool(y, idx, (6, 6)), expected, np.int16)


# ---------------------------------------------------------------- no Python loop over outputs


def _count_calls(function) -> tuple[int, int]:
    """(Python calls, C calls) made while `function` runs."""
    counts = {"call": 0, "c_call": 0}

    def profile(frame, event, arg):
        if event in counts:
            counts[event] += 1

    gc.collect()
    gc.disable()  # a collection's callbacks (weakrefs, __del__) are not the engine's calls
    sys.setprofile(profile)
    try:
        function()
    finally:
        sys.setprofile(None)
        gc.enable()
    return counts["call"], counts["c_call"]


@pytest.mark.parametrize(
    "keywords",
    [dict(mode=m) for m in MODES]
    + [dict(mode="max", return_indices=True), dict(mode="avg", padding=1, count_include_pad=False),
       dict(mode="max", padding=1, pad_mode="reflect"), dict(mode="avg", nan_policy="omit")],
    ids=lambda k: "-".join(f"{v}" for v in k.values()),
)
def test_no_python_loop_over_outputs(keywords, monkeypatch):
    """The number of calls (Python and C) does not grow with the output size (one thread:
    the parallel path loops over slabs of a few MB, a count set by bytes, not outputs)."""
    monkeypatch.setenv("POOLCLI_THREADS", "1")
    rng = np.random.default_rng(0)
    small, big = rng.normal(size=(1, 1, 64, 64)), rng.normal(size=(1, 1, 512, 512))
    pool(small, 2, **keywords)  # lazy imports and caches happen outside the count
    counts_small = _count_calls(lambda: pool(small, 2, **keywords))
    counts_big = _count_calls(lambda: pool(big, 2, **keywords))
    assert counts_big == counts_small


@pytest.mark.parametrize("mode", ["max", "avg", "l2", "median"])
def test_no_python_loop_over_outputs_backward(mode, monkeypatch):
    monkeypatch.setenv("POOLCLI_THREADS", "1")
    rng = np.random.default_rng(0)
    small, big = rng.normal(size=(1, 1, 64, 64)), rng.normal(size=(1, 1, 512, 512))
    pool_backward(np.ones((1, 1, 32, 32)), small, 2, mode=mode)
    counts_small = _count_calls(lambda: pool_backward(np.ones((1, 1, 32, 32)), small, 2, mode=mode))
    counts_big = _count_calls(lambda: pool_backward(np.ones((1, 1, 256, 256)), big, 2, mode=mode))
    assert counts_big == counts_small


def test_take_is_called_per_tap_not_per_output(monkeypatch):
    monkeypatch.setenv("POOLCLI_THREADS", "1")
    calls = []
    original = poolcli.engine.taps.take_along  # the tap loops' one door to a tap

    def counting_take(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(poolcli.engine.taps, "take_along", counting_take)
    counts = []
    for n in (64, 512):
        calls.clear()
        pool(np.zeros((1, 1, n, n)), 2, mode="avg")
        counts.append(len(calls))
    assert counts[0] == counts[1] <= 4  # 2 taps on each of 2 axes


def test_lists_become_numpy_arrays():
    y = pool([[1, 2], [3, 4]], 2, mode="sum")
    assert_array(y, [[10]], np.int64)
    assert_array(pool_backward([[1.0]], [[1.0, 2.0], [3.0, 4.0]], 2), [[0, 0], [0, 1]], np.float64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("requested", [None, "uint8", "float32"])
def test_adaptive_dtypes(mode, requested):
    x = _sample("uint8", (2, 7, 5), seed=4)
    y = adaptive_pool(x, (3, 2), mode=mode, dtype=requested)
    want = expected_dtype(x.dtype, mode, requested)
    expected = adaptive_ref(x, (3, 2), mode=mode)
    if want.kind in "biu":
        expected = round_half_up(expected, want)
    assert_array(y, expected, want, **_tolerance(want))


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("axes", [(0, 1), (0, 2), (-1, -3)])
def test_unpool_over_any_axes(mode, axes):
    """Each value goes back to its flat index over the pooled axes (array-axis order)."""
    x = np.random.default_rng(2).permutation(7 * 6 * 3).reshape(7, 6, 3).astype(np.float64)
    y, idx = pool(x, 2, mode=mode, axes=axes, ceil_mode=True, return_indices=True)
    pooled = sorted(a % 3 for a in axes)
    expected = np.zeros_like(x)
    for position in np.ndindex(*y.shape):
        target = list(position)
        flat = idx[position]
        for axis in reversed(pooled):
            target[axis] = flat % x.shape[axis]
            flat //= x.shape[axis]
        expected[tuple(target)] = y[position]
    assert_array(unpool(y, idx, x.shape, axes=axes), expected, np.float64, rtol=0, atol=0)
    assert_array(unpool(y, idx, tuple(x.shape[a] for a in pooled), axes=axes), expected, np.float64,
                 rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 2), (7, 9), (64, 50), (31, 40, 1), (33, 17, 3), (40, 41, 4), (12, 14, 2)])
def test_opencv_area_fast_path_is_exact(shape, monkeypatch):
    """uint8 avg 2x2 -> uint8 goes through OpenCV for 1, 3, 4 channels: same as the brute force."""
    import cv2

    rng = np.random.default_rng(sum(shape))
    x = (rng.integers(0, 4, shape) * 85 + rng.integers(0, 2, shape)).astype(np.uint8)  # many .5 means
    x[0, 0] = 255
    calls = []
    real_resize = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda *a, **k: calls.append(1) or real_resize(*a, **k))
    actual = pool(x, 2, mode="avg", axes=(0, 1), dtype=np.uint8)
    expected = round_half_up(pool_ref(x, 2, mode="avg", axes=(0, 1)), np.dtype(np.uint8))
    assert_array(actual, expected, np.uint8)
    channels = shape[2] if len(shape) == 3 else 1
    assert bool(calls) == (channels != 2)


@pytest.mark.parametrize("shape, axes", [((0, 4, 4), None), ((2, 0, 4, 4), None), ((6, 4, 0), (0, 1))])
@pytest.mark.parametrize("mode", MODES)
def test_empty_batch_axes_give_empty_results(shape, axes, mode):
    x = np.zeros(shape, np.float32)
    y = pool(x, 2, mode=mode, axes=axes)
    assert y.shape == output_shape(shape, 2, axes=axes) and y.size == 0
