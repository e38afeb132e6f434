"""The engine at its edges: the extremes of every dtype, byte order, parameters past int64,
huge exponents and windows, and median's memory.

Expected values come from exact arithmetic on Python integers and Fractions, window by
window (the geometry from tests/reference.py, which never imports poolcli): integer outputs
are floor(v + 1/2) of the exact value, clipped to the dtype's range; float outputs are the
exact value rounded once (avg: the exact sum rounded once, then divided, as SPEC's float64
mean of integers is computed). Every fast path added here has a twin test: forced on and
forced off on the same random geometries.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import padding_only_windows, plan

from poolcli import PoolError, adaptive_pool, engine, output_shape, pool, pool_backward, unpool
from poolcli.backends import cuda
from poolcli.core import dtypes
from poolcli.core.geometry import plan_pool
from poolcli.engine import median

ROOT = Path(__file__).resolve().parent.parent
FIXED = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
MODES = ("max", "min", "avg", "sum", "l2", "lp", "median")
INT_TARGETS = ("int8", "uint8", "int16", "uint16", "int32", "int64", "uint64")
INT64_MAX, UINT64_MAX = 2**63 - 1, 2**64 - 1


# ================================================================== the exact reference


def exact_windows(x, keywords):
    """(output shape, [(output index, real values, zero-padding cells)]) for pool(x, **keywords).

    Real values are Python numbers (edge/reflect padding is made of real values); the
    ceil-mode overhang past the padding is neither.
    """
    rows = plan(x.shape, keywords["window"], keywords.get("stride"), padding=keywords.get("padding", 0),
                dilation=keywords.get("dilation", 1), ceil_mode=keywords.get("ceil_mode", False),
                axes=keywords.get("axes"))
    pad_mode = keywords.get("pad_mode", "zeros")
    return _windows(x, rows, lambda row, o: _axis_cells(row, o, pad_mode))


def exact_bins(x, output_size, axes=None):
    """As exact_windows, for adaptive_pool: bin i covers [floor(i n/out), ceil((i+1) n/out))."""
    pooled = [a % x.ndim for a in (axes or range(x.ndim - len(output_size), x.ndim))]
    rows = [dict(axis=a, n=x.shape[a], out=out) for a, out in zip(pooled, output_size, strict=True)]
    return _windows(x, sorted(rows, key=lambda r: r["axis"]),
                    lambda row, i: list(range(i * row["n"] // row["out"], -(-(i + 1) * row["n"] // row["out"]))))


def _axis_cells(row, o: int, pad_mode: str) -> list:
    """Input positions of window o's taps (None: a zero-padding cell)."""
    n, lo, hi = row["n"], row["lo"], row["hi"]
    source = np.pad(np.arange(n), (lo, hi), mode=pad_mode) if pad_mode != "zeros" else None
    cells = []
    for j in range(row["k"]):
        q = o * row["s"] - lo + j * row["d"]
        if 0 <= q < n:
            cells.append(q)
        elif -lo <= q < n + hi:
            cells.append(None if source is None else int(source[q + lo]))
    return cells


def _windows(x, rows, axis_cells):
    out_shape = list(x.shape)
    for row in rows:
        out_shape[row["axis"]] = row["out"]
    windows = []
    for index in np.ndindex(*out_shape):
        real, zeros = [], 0
        for combo in itertools.product(*(axis_cells(row, index[row["axis"]]) for row in rows)):
            if None in combo:
                zeros += 1
                continue
            source = list(index)
            for row, position in zip(rows, combo, strict=True):
                source[row["axis"]] = position
            real.append(x[tuple(source)].item())
        windows.append((index, real, zeros))
    return tuple(out_shape), windows


def exact_value(mode, real, zeros, *, count_include_pad=True, divisor_override=None, p=2):
    """One window's exact value: a Fraction, or ("root", q, p) for q ** (1/p) (l2, lp)."""
    values = [Fraction(v) for v in real]
    divisor = divisor_override or len(values) + (zeros if count_include_pad else 0)
    if mode in ("max", "min"):
        return max(values) if mode == "max" else min(values)
    if mode == "sum":
        return sum(values, Fraction(0))
    if mode == "avg":
        return sum(values, Fraction(0)) / divisor
    if mode == "median":
        ordered = sorted(values)
        return (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    if mode == "l2":
        return "root", sum((v * v for v in values), Fraction(0)) / divisor, 2
    return "root", sum((abs(v) ** p for v in values), Fraction(0)), p


def rounded_clipped(value, dtype) -> int:
    """SPEC's integer output: floor(v + 1/2), clipped to the dtype's range (exact, roots too)."""
    if isinstance(value, tuple):  # floor(q^(1/p) + 1/2) = floor((floor(2 q^(1/p)) + 1) / 2)
        _, q, p = value
        n = (_integer_root(math.floor(q * 2**p), p) + 1) // 2
    else:
        n = math.floor(value + Fraction(1, 2))
    info = np.iinfo(dtype)
    return min(max(n, int(info.min)), int(info.max))


def _integer_root(n: int, p: int) -> int:
    """floor(n ** (1/p)) for an integer n >= 0."""
    low, high = 0, 1 << (n.bit_length() // p + 1)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if middle**p <= n else (low, middle - 1)
    return low


def as_float(value, dtype="float64"):
    """The exact value rounded once to float64 (then to `dtype`)."""
    if isinstance(value, tuple):
        _, q, p = value
        return np.dtype(dtype).type(float(q) ** (1 / p))
    return np.dtype(dtype).type(float(value))


def assert_same(actual, expected):
    """Type, dtype and shape, then every bit (NaN equal to NaN)."""
    assert type(actual) is np.ndarray, type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.dtype.isnative
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


# ================================================================== random geometries


@st.composite
def geometries(draw, max_axes: int = 3, pad_modes=("zeros", "edge", "reflect")):
    """(shape, keywords of pool) for a valid call: 1-3 pooled axes among up to 4, padding,
    dilation, ceil mode, pad mode, per-axis values."""
    ndim = draw(st.integers(1, 4), label="ndim")
    m = draw(st.integers(1, min(max_axes, ndim)), label="pooled")
    axes = tuple(draw(st.permutations(range(ndim)))[:m])
    windows = [draw(st.integers(1, 3)) for _ in axes]
    strides = [draw(st.integers(1, 3)) for _ in axes]
    dilations = [draw(st.integers(1, 2)) for _ in axes]
    spans = [d * (k - 1) + 1 for k, d in zip(windows, dilations, strict=True)]
    pads = [(draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1))) for span in spans]
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    for axis, span in zip(axes, spans, strict=True):
        shape[axis] = draw(st.integers(1, span + 4))
    keywords = dict(window=tuple(windows), stride=tuple(strides), dilation=tuple(dilations), padding=tuple(pads),
                    ceil_mode=draw(st.booleans(), label="ceil"), axes=axes,
                    pad_mode=draw(st.sampled_from(pad_modes), label="pad_mode"))
    rows = plan(tuple(shape), keywords["window"], keywords["stride"], padding=keywords["padding"],
                dilation=keywords["dilation"], ceil_mode=keywords["ceil_mode"], axes=axes)
    if any(row["out"] < 1 or padding_only_windows(row) for row in rows):
        keywords.update(padding=tuple((0, 0) for _ in axes), ceil_mode=False, window=tuple(1 for _ in axes))
    return tuple(shape), keywords


# ================================================================== 1. 64-bit integers, exactly

EXTREMES = {
    "int64": [-(2**63), -(2**63) + 1, -(2**62) - 5, -(2**53) - 1, -3, -1, 0, 1, 2**53 + 1, 2**62 + 3,
              INT64_MAX - 1, INT64_MAX],
    "uint64": [0, 1, 3, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, UINT64_MAX - 2, UINT64_MAX - 1, UINT64_MAX],
}
REQUESTED = {"sum": (None, "float64") + INT_TARGETS, "avg": (None, "float32") + INT_TARGETS,
             "median": (None, "float64", "float32") + INT_TARGETS}


def test_the_reported_64_bit_results():
    top = np.iinfo(np.int64).max
    assert pool(np.full((2, 2), top, np.int64), 2, mode="avg").tolist() == [[9.223372036854776e18]]
    assert pool(np.full((2, 2), top, np.int64), 2, mode="sum").tolist() == [[top]]  # clipped, not -4
    assert pool(np.full((2, 2), -top - 1, np.int64), 2, mode="sum").tolist() == [[-top - 1]]
    assert pool(np.full((2, 2), UINT64_MAX, np.uint64), 2, mode="avg").tolist() == [[float(UINT64_MAX)]]
    assert pool(np.full((2, 2), UINT64_MAX, np.uint64), 2, mode="sum").tolist() == [[UINT64_MAX]]
    assert pool(np.full((2, 2), UINT64_MAX, np.uint64), 2, mode="median").tolist() == [[UINT64_MAX]]
    assert pool(np.full((2, 2), top - 1, np.int64), 2, mode="median").tolist() == [[top - 1]]
    near = np.array([top - 3, top - 2, top, top], np.int64)  # (top - 2 + top) / 2 = top - 1
    assert pool(near, 4, mode="median").tolist() == [top - 1]
    assert pool(near, 4, mode="avg", dtype=np.int64).tolist() == [top - 1]  # (4 top - 5) / 4 = top - 1.25


@FIXED
@given(geometry=geometries(), data=st.data())
def test_64_bit_sums_means_and_medians_are_exact(geometry, data):
    """sum, avg and median of int64/uint64 values near their limits, in every geometry,
    divisor and requested dtype, against Fractions."""
    shape, keywords = geometry
    dtype = data.draw(st.sampled_from(sorted(EXTREMES)), label="dtype")
    mode = data.draw(st.sampled_from(sorted(REQUESTED)), label="mode")
    requested = data.draw(st.sampled_from(REQUESTED[mode]), label="requested")
    x = np.array(data.draw(st.lists(st.sampled_from(EXTREMES[dtype]), min_size=math.prod(shape),
                                    max_size=math.prod(shape)), label="values"), dtype=dtype).reshape(shape)
    if mode == "avg":
        keywords["count_include_pad"] = data.draw(st.booleans(), label="count_include_pad")
        keywords["divisor_override"] = data.draw(st.sampled_from([None, None, 1, 3, 2**31 + 1, 2**62 + 1,
                                                                  INT64_MAX]), label="divisor_override")
    out_shape, windows = exact_windows(x, keywords)
    target = np.dtype(requested) if requested else dtypes.natural_dtype(x.dtype, mode)
    expected = np.empty(out_shape, dtype=target)
    for index, real, zeros in windows:
        expected[index] = _exact_64(mode, real, zeros, keywords, target)
    assert_same(pool(x, mode=mode, dtype=requested, **keywords), expected)


def _exact_64(mode, real, zeros, keywords, target):
    options = {k: keywords[k] for k in ("count_include_pad", "divisor_override") if k in keywords}
    if mode == "avg" and target.kind == "f":  # the exact sum rounded once, then divided
        divisor = options.get("divisor_override") or len(real) + (zeros if options.get("count_include_pad") else 0)
        return target.type(float(sum(real)) / float(divisor))
    value = exact_value(mode, real, zeros, **options)
    return as_float(value, target) if target.kind == "f" else rounded_clipped(value, target)


@pytest.mark.parametrize("mode", ["sum", "avg", "median"])
@pytest.mark.parametrize("requested", [None, "float64", "int8", "int64", "uint64"])
def test_64_bit_adaptive_pooling_is_exact(mode, requested):
    rng = np.random.default_rng(len(mode))
    for dtype in sorted(EXTREMES):
        x = rng.choice(np.array(EXTREMES[dtype], dtype=dtype), size=(2, 5, 7))
        out_shape, windows = exact_bins(x, (3, 2))
        target = np.dtype(requested) if requested else dtypes.natural_dtype(x.dtype, mode)
        expected = np.empty(out_shape, dtype=target)
        for index, real, zeros in windows:
            expected[index] = _exact_64(mode, real, zeros, {}, target)
        assert_same(adaptive_pool(x, (3, 2), mode=mode, dtype=requested), expected)


@pytest.mark.parametrize("mode", ["l2", "lp"])
@pytest.mark.parametrize("dtype", sorted(EXTREMES))
def test_64_bit_l2_and_lp_do_not_wrap(mode, dtype):
    """They compute in float64: within a float64's rounding of the exact value, never wrapped."""
    x = np.array(EXTREMES[dtype], dtype=dtype)
    keywords = dict(window=3, stride=1, padding=1, mode=mode, p=3.0)
    y = pool(x, **keywords)
    assert y.dtype == np.float64
    _, windows = exact_windows(x, keywords)
    for index, real, zeros in windows:
        expected = float(as_float(exact_value(mode, real, zeros, p=3)))
        assert y[index] == pytest.approx(expected, rel=1e-14), (index, real)


# ================================================================== 2. integer outputs clip

INPUTS = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64")


def _extreme_input(dtype: str) -> np.ndarray:
    """Windows of the dtype's largest and smallest values, and mixtures of both."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.array([[1, 1, 0, 1, 1, 0], [1, 1, 0, 0, 1, 0]], bool)
    if dtype.kind == "f":
        big = float(np.finfo(dtype).max)
        highs = [big, big, min(2.0**63, big), min(2.0**62, big), big, 0.5]  # squares fit a float32
        lows = [-big, -big, -min(2.0**63, big), -min(2.0**62, big), -big, 0.0]
        return np.array([highs, lows], dtype)
    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    return np.array([[high, high, low, low, high, low], [high, high - 1, low, low + 1, high, high]], dtype)


@pytest.mark.parametrize("source", INPUTS)
@pytest.mark.parametrize("mode", MODES)
def test_integer_outputs_round_half_up_and_clip(mode, source):
    """Every mode, input dtype and requested integer dtype, at the dtype's extremes (lp with
    p = 2: float32 inputs compute in float32, where |2**63|**3 overflows by SPEC)."""
    x = _extreme_input(source)
    for keywords in (dict(window=2), dict(window=(2, 3), stride=1, padding=(0, 1), count_include_pad=False)):
        if mode not in ("avg", "l2"):
            keywords.pop("count_include_pad", None)
        _, windows = exact_windows(x, keywords)
        for target in INT_TARGETS:
            y = pool(x, mode=mode, dtype=target, p=2, **keywords)
            assert y.dtype == np.dtype(target)
            for index, real, zeros in windows:
                expected = rounded_clipped(exact_value(mode, real, zeros, p=2,
                                                       count_include_pad=keywords.get("count_include_pad", True)),
                                           target)
                floats = source.startswith("float") or mode in ("l2", "lp")  # float arithmetic by SPEC
                slack = abs(expected) * (2.0**-20 if source in ("float16", "float32") else 2.0**-40) + 1
                slack = slack if floats else 0
                assert abs(int(y[index]) - expected) <= slack, (target, keywords, index, real, int(y[index]))


def test_the_reported_clipping_results():
    assert pool(np.full((2, 2), 127, np.int8), 2, mode="sum", dtype=np.int8).tolist() == [[127]]
    assert pool(np.full((2, 2), -(2**63), np.int64), 2, mode="avg", dtype=np.uint8).tolist() == [[0]]
    assert pool(np.full((2, 2), INT64_MAX, np.int64), 2, mode="avg", dtype=np.uint8).tolist() == [[255]]
    assert pool(np.full((1, 1), 3e38, np.float32), 1, mode="max", dtype=np.int32).tolist() == [[2**31 - 1]]
    assert pool(np.full((1, 1), 1e300), 1, mode="max", dtype=np.int64).tolist() == [[INT64_MAX]]
    assert pool(np.full((1, 1), 1e300), 1, mode="max", dtype=np.uint64).tolist() == [[UINT64_MAX]]


@pytest.mark.parametrize(("value", "dtype"), [
    (2**23 + 1, np.float32), (2**24 - 1, np.float32), (2**53 - 1, np.float64), (2**52 + 1, np.float64),
    (0.49999997, np.float32), (0.49999999999999994, np.float64), (-2.5, np.float64), (2.5, np.float32),
])
def test_float_to_integer_rounding_is_exact(value, dtype):
    """floor(v + 1/2) of the float itself: adding 0.5 in the float would round first."""
    x = np.array([value], dtype)
    expected = math.floor(Fraction(float(x[0])) + Fraction(1, 2))
    assert pool(x, 1, mode="max", dtype=np.int64).tolist() == [expected]


def test_float_median_of_huge_values_does_not_overflow():
    big = float(np.finfo(np.float64).max)
    y = pool(np.array([big, big / 2, -big, big]), 2, mode="median")
    assert y.tolist() == [0.75 * big, 0.0]


# ================================================================== 3. byte order

BIG_ENDIAN = (">f8", ">i4", ">u2", ">i8", ">f4", ">u8")


@pytest.mark.parametrize("dtype", BIG_ENDIAN)
@pytest.mark.parametrize("mode", MODES)
def test_big_endian_inputs_pool_like_native_ones(mode, dtype):
    native = (np.arange(42) * 7 % 17).reshape(6, 7).astype(np.dtype(dtype).newbyteorder("="))
    swapped = native.astype(dtype)
    keywords = dict(window=3, stride=2, padding=1, ceil_mode=True, mode=mode)
    assert_same(pool(swapped, **keywords), pool(native, **keywords))
    assert_same(adaptive_pool(swapped, (4, 3), mode=mode), adaptive_pool(native, (4, 3), mode=mode))
    grad = np.linspace(-1, 1, math.prod(output_shape(native.shape, **keywords)))
    grad = grad.reshape(output_shape(native.shape, **keywords))
    assert_same(pool_backward(grad.astype(">f8"), swapped, **keywords), pool_backward(grad, native, **keywords))
    if mode in ("max", "min"):
        y, indices = pool(swapped, return_indices=True, **keywords)
        expected_y, expected_indices = pool(native, return_indices=True, **keywords)
        assert_same(y, expected_y)
        assert_same(indices, expected_indices)
        assert_same(unpool(y.astype(dtype), indices.astype(">i8"), native.shape), unpool(y, indices, native.shape))


# ================================================================== 4. parameters past int64

X = np.zeros((4, 4))
BEYOND = {
    "stride 2**63": (lambda: pool(X, 2, stride=2**63), "stride"),
    "stride numpy uint64": (lambda: pool(X, 2, stride=np.uint64(2**63)), "stride"),
    "window 2**63": (lambda: pool(X, 2**63), "window"),
    "window 2**70": (lambda: pool(X, 2**70), "window"),
    "window 10**30": (lambda: pool(X, 10**30), "window"),
    "window per axis": (lambda: pool(X, (2, 10**30)), "window"),
    "padding 2**70": (lambda: pool(X, 2, padding=2**70), "padding"),
    "padding pair 10**30": (lambda: pool(X, 2, padding=((0, 10**30), (0, 0))), "padding"),
    "dilation 2**63": (lambda: pool(X, 2, dilation=2**63), "dilation"),
    "span past int64": (lambda: pool(X, 2**62, dilation=4), "window"),
    "padding past int64": (lambda: pool(X, 2**62 + 1, stride=1, padding=2**62), "padding"),
    "output too large": (lambda: pool(np.zeros(4), 2**61, stride=1, padding=2**61 - 1), "output"),
    "edge padding too large": (lambda: pool(np.zeros(10), 2**62, padding=2**61, pad_mode="edge"), "padding"),
    "divisor_override 2**63": (lambda: pool(X, 2, mode="avg", divisor_override=2**63), "divisor_override"),
    "divisor_override 10**30": (lambda: pool(X, 2, mode="l2", divisor_override=10**30), "divisor_override"),
    "output_size 2**70": (lambda: adaptive_pool(X, 2**70), "output_size"),
    "output_size past int64 bins": (lambda: adaptive_pool(X, (2**62, 1)), "output_size"),
    "axes 2**70": (lambda: pool(X, 2, axes=(0, 2**70)), "axes"),
    "axes -10**30": (lambda: pool(X, 2, axes=(-(10**30), 1)), "axes"),
    "p 10**400": (lambda: pool(X, 2, mode="lp", p=10**400), "p"),
    "p -10**400": (lambda: pool(X, 2, mode="lp", p=-(10**400)), "p"),
    "output_shape stride": (lambda: output_shape((4, 4), 2, 2**64), "stride"),
    "backward window": (lambda: pool_backward(np.ones((2, 2)), X, 2**64), "window"),
}


@pytest.mark.parametrize("case", BEYOND, ids=list(BEYOND))
def test_parameters_past_int64_are_pool_errors(case):
    call, name = BEYOND[case]
    with pytest.raises(PoolError) as error:
        call()
    message = str(error.value)
    assert name in message and "use" in message, message


def test_numpy_integer_parameters_and_an_unused_huge_p_are_fine():
    x = np.arange(16.0).reshape(4, 4)
    y = pool(x, np.int64(2), stride=np.uint8(2), padding=np.int32(1), dilation=np.uint64(1), axes=(np.int8(0), 1))
    assert y.tolist() == pool(x, 2, 2, padding=1).tolist()
    assert pool(x, 2, p=10**400).tolist() == [[5.0, 7.0], [13.0, 15.0]]  # p only matters to lp
    assert adaptive_pool(x, np.int64(2), mode="max").tolist() == [[5.0, 7.0], [13.0, 15.0]]


def test_a_huge_window_over_a_long_axis_pools():
    x = np.arange(3_000_000, dtype=np.float64) % 1013
    for mode, expected in (("max", x[:2_100_000].max()), ("sum", x[:2_100_000].sum()),
                           ("avg", x[:2_100_000].mean()), ("min", 0.0)):
        assert pool(x, 2_100_000, mode=mode).tolist() == pytest.approx([expected], rel=1e-12)
    y = pool(x, 2_100_000, stride=300_000, mode="max")
    assert y.tolist() == [x[o * 300_000 : o * 300_000 + 2_100_000].max() for o in range(4)]


HUGE_WINDOW = textwrap.dedent("""
    import json
    import numpy as np
    import poolcli
    x = np.array([3.0, -1, 4, 1, -5, 9, 2, 6, 5, 3])
    results = {}
    for mode in ("max", "min", "avg", "sum", "l2", "lp", "median"):
        keywords = dict(window=2**62, padding=2**61, mode=mode)
        grad = poolcli.pool_backward(np.ones(1), x, **keywords)
        indices = poolcli.pool(x, return_indices=True, **keywords)[1].tolist() if mode in ("max", "min") else None
        results[mode] = [poolcli.pool(x, **keywords).tolist(), bool(np.isfinite(grad).all()), indices]
    print(json.dumps(results))
""")


def run_child(script: str, timeout: float = 10) -> object:
    """What a fresh interpreter running `script` prints (JSON), failing if it takes over `timeout`
    seconds: a call that hangs fails the test instead of stalling the suite."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_huge_windows_and_pads_over_a_short_input_cost_their_real_taps():
    """window 2**62 with padding 2**61 on 10 cells: one window holding the whole input (and
    2**62 - 10 padding cells), in every mode, forward, indices and backward; only the taps
    that reach the input are visited, so this answers at once instead of never."""
    results = run_child(HUGE_WINDOW)
    squares = sum(v * v for v in (3, 1, 4, 1, 5, 9, 2, 6, 5, 3))
    expected = {"max": 9.0, "min": -5.0, "sum": 27.0, "avg": 27 / 2**62, "median": 3.0,
                "l2": math.sqrt(squares / 2**62), "lp": math.sqrt(squares)}
    for mode, (values, finite_gradient, indices) in results.items():
        assert values == pytest.approx([expected[mode]], rel=1e-15), mode
        assert finite_gradient, mode
        assert indices == {"max": [5], "min": [4]}.get(mode), mode


# ================================================================== 5. lp with a huge p

HUGE_P = textwrap.dedent("""
    import json
    import numpy as np
    import poolcli
    ramp = poolcli.pool(np.arange(64, dtype=np.uint8).reshape(8, 8), 2, mode="lp", p=1e308)
    small = {dtype: poolcli.pool(np.array([[0, 1, 0, 1, 0, 0], [1, 0, 2, 0, 0, 0]], dtype), 2, mode="lp",
                                 p=1e308).tolist() for dtype in ("uint8", "int64", "float64", "bool")}
    print(json.dumps([str(ramp.dtype), ramp.tolist(), small]))
""")


def test_lp_with_a_huge_p_answers_promptly():
    """p = 1e308 never takes the exact integer power path (it never returned), nor lets |x|^p
    overflow to inf (where PyTorch gives inf): the p-norm, scaled by each window's largest
    |x|, which for p -> inf is that largest |x|."""
    dtype, ramp, small = run_child(HUGE_P)
    assert dtype == "float64"
    largest = np.arange(64).reshape(4, 2, 4, 2).max(axis=(1, 3)).astype(float)
    assert ramp == largest.tolist()
    ones_and_a_two = [[1.0, 2.0, 0.0]]  # windows [0, 1, 1, 0], [0, 1, 2, 0], [0, 0, 0, 0]
    assert small == {"uint8": ones_and_a_two, "int64": ones_and_a_two, "float64": ones_and_a_two,
                     "bool": [[1.0, 1.0, 0.0]]}, small  # bool has no 2


@pytest.mark.parametrize("dtype", ["uint8", "int64", "float64", "bool"])
@pytest.mark.parametrize("p", [64.0, 65.0, 1000.0])
def test_lp_with_a_large_p_is_the_float_formula(dtype, p):
    """Around the largest exponent computed exactly in integers (64), and past it."""
    x = np.array([[0, 1, 0, 1, 0, 0], [1, 0, 2, 0, 0, 0]], dtype=dtype)
    y = pool(x, 2, mode="lp", p=p)
    cells = x.astype(np.float64).reshape(2, 3, 2).transpose(1, 0, 2).reshape(3, 4)
    with np.errstate(over="ignore"):
        expected = np.power(np.power(np.abs(cells), p).sum(axis=1), 1 / p)
    np.testing.assert_allclose(y[0], expected, rtol=1e-15)


# ================================================================== 6. median's memory


@st.composite
def median_cases(draw):
    shape, keywords = draw(geometries())
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "int64", "uint64", "bool"]), label="dtype")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    if dtype == "bool":
        x = rng.random(shape) < 0.5
    elif dtype.startswith("float"):
        x = rng.integers(-3, 4, shape).astype(dtype)
        x[rng.random(shape) < 0.2] = np.nan
    else:
        x = rng.choice(np.array(EXTREMES.get(dtype, [-3, -1, 0, 2, 5]), dtype=dtype), size=shape)
    keywords.update(mode="median", nan_policy=draw(st.sampled_from(["propagate", "omit"]), label="nan_policy"))
    return x, keywords, draw(st.sampled_from([None, "float64", "int16", "uint64"]), label="requested")


@FIXED
@given(case=median_cases())
def test_median_blocks_give_the_same_bits(case):
    """The same medians (and gradients) whatever the block size: one window a block vs one block."""
    x, keywords, requested = case
    shape = output_shape(x.shape, **keywords)
    grad = np.linspace(-2, 2, math.prod(shape)).reshape(shape)
    results = []
    for budget in (1, 1 << 40):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine.BUDGETS, "median_block_bytes", budget)
            results.append((pool(x, dtype=requested, **keywords), pool_backward(grad, x, **keywords)))
    for tiny, whole in zip(*results, strict=True):
        assert_same(tiny, whole)


def test_small_blocks_really_split_the_work(monkeypatch):
    calls = []
    original = median._median_block
    monkeypatch.setattr(median, "_median_block", lambda *args: calls.append(1) or original(*args))
    monkeypatch.setattr(engine.BUDGETS, "median_block_bytes", 8 * 9 * 8)  # eight 3x3 windows
    x = np.arange(2 * 5 * 6.0).reshape(2, 5, 6)
    with engine.fast_paths(median_values=False, median_counts=False, median_opencv=False):  # the general path
        y = pool(x, 3, stride=1, mode="median")
    assert len(calls) == 2 * 2  # per batch item, its 3 rows of 4 windows in blocks of 2 rows and 1
    assert y.tolist() == [[[7 + 30 * b + r * 6 + c for c in range(4)] for r in range(3)] for b in range(2)]
    assert pool(x, 3, stride=1, mode="median").tolist() == y.tolist()  # the fast paths, in the same tiny blocks


MEDIAN_UNDER_A_CAP = textwrap.dedent("""
    import resource
    limit = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import poolcli
    x = np.random.default_rng(0).random((96, 96), dtype=np.float32)
    y = poolcli.pool(x, 61, stride=1, mode="median", padding=30)  # 9216 windows x 3721 taps
    assert y.shape == (96, 96) and np.isfinite(y).all()
    print("ok")
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is a Linux limit")
def test_median_runs_under_a_memory_cap():
    """Gathering every window at once needs 1.5 GB here (more on larger inputs); blocks stay
    well under the 1 GiB of address space this child may use."""
    env = {**os.environ, "POOLCLI_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", MEDIAN_UNDER_A_CAP], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


# ================================================================== fast paths and their twins


@FIXED
@given(geometry=geometries(pad_modes=("zeros", "edge")), mode=st.sampled_from(["max", "min", "sum", "avg", "l2", "lp"]),
       seed=st.integers(0, 2**32 - 1))
def test_window_by_window_reduction_matches_tap_by_tap(geometry, mode, seed):
    """The loop over few huge windows against the loop over taps (integer-valued data: every
    sum is exact in both orders, so the bits agree)."""
    shape, keywords = geometry
    x = np.random.default_rng(seed).integers(-4, 5, shape).astype(np.float64)
    results = []
    for ratio in (0, 10**9):  # 0: every regular axis window by window; 10**9: never
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine.BUDGETS, "window_wise_ratio", ratio)
            results.append(pool(x, mode=mode, p=3, **keywords))
    assert_same(*results)


def test_64_bit_sums_in_parallel_slabs_are_exact(monkeypatch):
    """Slabs on two threads each choose their own path (wide or not); together they are exact."""
    monkeypatch.setenv("POOLCLI_THREADS", "2")
    rng = np.random.default_rng(5)
    x = rng.choice(np.array(EXTREMES["int64"], np.int64), size=(600, 600))  # 2.9 MB: parallel slabs
    x[:300] //= 2**40  # half the slabs hold small values only
    windows = x.astype(object).reshape(300, 2, 300, 2).sum(axis=(1, 3))
    expected = np.array([[min(max(v, -(2**63)), INT64_MAX) for v in row] for row in windows], np.int64)
    assert_same(pool(x, 2, mode="sum"), expected)
    means = np.array([[float(v) / 4 for v in row] for row in windows])
    assert_same(pool(x, 2, mode="avg"), means)


def test_fused_kernels_leave_64_bit_overflow_to_the_engine(monkeypatch):
    """The CUDA kernels accumulate in 64 bits: calls whose sums need more are the engine's."""
    from cuda_host import fake_cupy

    monkeypatch.setattr(cuda, "_cupy", fake_cupy)
    big = np.full((4, 4), INT64_MAX, np.int64)
    for mode, dtype in (("sum", None), ("avg", None), ("avg", np.dtype(np.int64)), ("sum", np.dtype(np.int8))):
        plan = plan_pool(big.shape, 2, mode=mode)
        fit = functools.partial(engine.integer_sums_fit, requested=dtype)
        assert cuda.forward(big, plan, dtype, False, fit) is None
        assert not engine.integer_sums_fit(np, big, plan, dtype)
        assert engine.integer_sums_fit(np, big // 8, plan, dtype)  # small values: fused
    rounded = plan_pool((4,), 2, mode="avg")
    half = np.full(4, 2**61, np.int64)  # the sum fits, 2 * sum + divisor does not
    assert engine.integer_sums_fit(np, half, rounded, None)
    assert not engine.integer_sums_fit(np, half, rounded, np.dtype(np.int64))
