"""The engine against PyTorch CPU over random geometries (Hypothesis, fixed budget).

PyTorch is the reference wherever it has the operation: max/avg/lp pooling, adaptive
pooling, unpooling and autograd gradients, in 1-D, 2-D and 3-D, with batch and channel
axes. Its limits shape the draws: padding <= k/2, no dilation for avg/lp, no padding for
lp, and lp only where no ceil-mode window overhangs (torch's lp_pool multiplies an
average by k^2, which is not the p-norm of an overhanging window; test_engine_reference
checks that case against the brute force).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference import assert_array, axis_length

from poolcli import adaptive_pool, pool, pool_backward, unpool

FIXED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
LP_POOL = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
MAX_UNPOOL = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}
LEADING = [(1,), (3,), (2, 3)]  # (C,) unbatched, or (N, C)
FLOATS = {np.float64: torch.float64, np.float32: torch.float32}


def real_taps_everywhere(n, k, s, d, lo, hi, out) -> bool:
    """Whether every window holds at least one input cell (dilation can skip over them)."""
    return all(any(0 <= o * s - lo + j * d < n for j in range(k)) for o in range(out))


@st.composite
def geometries(draw, dims, *, dilation=True, padding=True, overhang=True, fits=False, max_k=4):
    """Per-axis window, stride, dilation, padding (<= k/2), sizes, ceil_mode, leading axes.

    `fits`: the unpadded input holds a whole window (torch's avg_pool3d demands it).
    """
    ceil_mode = draw(st.booleans())
    k, s, d, pad, n = [], [], [], [], []
    for _ in range(dims):
        k.append(draw(st.integers(1, max_k)))
        s.append(draw(st.integers(1, 3)))
        d.append(draw(st.integers(1, 3)) if dilation else 1)
        pad.append(draw(st.integers(0, k[-1] // 2)) if padding else 0)
        span = d[-1] * (k[-1] - 1) + 1
        smallest = span if fits else max(1, span - 2 * pad[-1])
        n.append(draw(st.integers(smallest, span + 6)))
        out = axis_length(n[-1], k[-1], s[-1], d[-1], pad[-1], pad[-1], ceil_mode)
        assume(out >= 1 and real_taps_everywhere(n[-1], k[-1], s[-1], d[-1], pad[-1], pad[-1], out))
        if not overhang and ceil_mode:
            assume((n[-1] + 2 * pad[-1] - span) % s[-1] == 0)
    leading = draw(st.sampled_from(LEADING))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(window=tuple(k), stride=tuple(s), dilation=tuple(d), padding=tuple(pad),
                ceil_mode=ceil_mode, shape=leading + tuple(n), seed=seed)


def distinct(shape, seed, dtype=np.float64, positive=False) -> np.ndarray:
    """Distinct values (no ties), negatives included unless `positive`."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size).astype(np.float64)
    values = values + 1.0 if positive else values - size // 2
    return (values / 4).reshape(shape).astype(dtype)


def to_torch(x, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.requires_grad_(True) if grad else t


def as_numpy(t) -> np.ndarray:
    return t.detach().numpy()


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=3e-6, atol=3e-6)


# ---------------------------------------------------------------- max


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@FIXED
@given(data=st.data())
def test_max_pool_and_indices_match_torch(dims, dtype, data):
    g = data.draw(geometries(dims))
    x = distinct(g["shape"], g["seed"], dtype)
    y, idx = pool(x, g["window"], g["stride"], padding=g["padding"], dilation=g["dilation"],
                  ceil_mode=g["ceil_mode"], return_indices=True)
    ty, tidx = MAX_POOL[dims](to_torch(x), g["window"], g["stride"], g["padding"], g["dilation"],
                              ceil_mode=g["ceil_mode"], return_indices=True)
    assert_array(y, as_numpy(ty), dtype, rtol=0, atol=0)
    assert_array(idx, as_numpy(tidx), np.int64)
    assert_array(pool(x, g["window"], g["stride"], padding=g["padding"], dilation=g["dilation"],
                      ceil_mode=g["ceil_mode"]), as_numpy(ty), dtype, rtol=0, atol=0)


@pytest.mark.parametrize("dims", [1, 2, 3])
@FIXED
@given(data=st.data())
def test_min_pool_is_torch_max_of_negated(dims, data):
    g = data.draw(geometries(dims))
    x = distinct(g["shape"], g["seed"])
    y, idx = pool(x, g["window"], g["stride"], mode="min", padding=g["padding"],
                  dilation=g["dilation"], ceil_mode=g["ceil_mode"], return_indices=True)
    ty, tidx = MAX_POOL[dims](to_torch(-x), g["window"], g["stride"], g["padding"], g["dilation"],
                              ceil_mode=g["ceil_mode"], return_indices=True)
    assert_array(y, -as_numpy(ty), np.float64, rtol=0, atol=0)
    assert_array(idx, as_numpy(tidx), np.int64)


def test_max_pool_nan_propagates_with_torch_index():
    x = np.arange(36.0).reshape(1, 6, 6)
    x[0, 0, 1] = x[0, 1, 0] = x[0, 4, 4] = np.nan
    y, idx = pool(x, 3, 2, padding=1, return_indices=True, ceil_mode=True)
    ty, tidx = F.max_pool2d(to_torch(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    assert_array(y, as_numpy(ty), np.float64)
    assert_array(idx, as_numpy(tidx), np.int64)


# ---------------------------------------------------------------- avg and sum


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@FIXED
@given(data=st.data())
def test_avg_pool_matches_torch(dims, dtype, data):
    g = data.draw(geometries(dims, dilation=False, fits=dims == 3))
    include = data.draw(st.booleans(), label="count_include_pad")
    override = data.draw(st.none() | st.integers(1, 7), label="divisor_override") if dims > 1 else None
    x = distinct(g["shape"], g["seed"], dtype)
    y = pool(x, g["window"], g["stride"], mode="avg", padding=g["padding"], ceil_mode=g["ceil_mode"],
             count_include_pad=include, divisor_override=override)
    extra = {} if dims == 1 else {"divisor_override": override}
    ty = AVG_POOL[dims](to_torch(x), g["window"], g["stride"], g["padding"], g["ceil_mode"], include,
                        **extra)
    assert_array(y, as_numpy(ty), dtype, **_tol(dtype))


@pytest.mark.parametrize("dims", [1, 2, 3])
@FIXED
@given(data=st.data())
def test_sum_pool_is_torch_avg_with_divisor_1(dims, data):
    """1-D runs through avg_pool2d with a (1, k) window (avg_pool1d has no divisor_override)."""
    g = data.draw(geometries(dims, dilation=False, fits=dims == 3))
    x = distinct(g["shape"], g["seed"])
    y = pool(x, g["window"], g["stride"], mode="sum", padding=g["padding"], ceil_mode=g["ceil_mode"])
    if dims == 1:
        t = to_torch(x).unsqueeze(-2)
        ty = F.avg_pool2d(t, (1, *g["window"]), (1, *g["stride"]), (0, *g["padding"]),
                          g["ceil_mode"], divisor_override=1).squeeze(-2)
    else:
        ty = AVG_POOL[dims](to_torch(x), g["window"], g["stride"], g["padding"], g["ceil_mode"],
                            divisor_override=1)
    assert_array(y, as_numpy(ty), np.float64, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- lp


def lp_pool(dims, t, p, g):
    """torch's lp_pool (lp_pool1d wants plain ints)."""
    window, stride = g["window"], g["stride"]
    if dims == 1:
        window, stride = window[0], stride[0]
    return LP_POOL[dims](t, p, window, stride, g["ceil_mode"])


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@FIXED
@given(data=st.data())
def test_lp_pool_matches_torch_without_overhang(dims, dtype, data):
    g = data.draw(geometries(dims, dilation=False, padding=False, overhang=False))
    p = data.draw(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4]), label="p")
    x = distinct(g["shape"], g["seed"], dtype, positive=True)
    y = pool(x, g["window"], g["stride"], mode="lp", p=p, ceil_mode=g["ceil_mode"])
    ty = lp_pool(dims, to_torch(x), p, g)
    tol = dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-5)
    assert_array(y, as_numpy(ty), dtype, **tol)


# ---------------------------------------------------------------- adaptive


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@FIXED
@given(data=st.data())
def test_adaptive_pool_matches_torch(dims, dtype, data):
    sizes = data.draw(st.tuples(*[st.integers(1, 9)] * dims), label="sizes")
    outs = tuple(data.draw(st.integers(1, n + 2), label="out") for n in sizes)
    leading = data.draw(st.sampled_from(LEADING), label="leading")
    x = distinct(leading + sizes, data.draw(st.integers(0, 2**32 - 1), label="seed"), dtype)
    y, idx = adaptive_pool(x, outs, mode="max", return_indices=True)
    ty, tidx = ADAPTIVE_MAX[dims](to_torch(x), outs, return_indices=True)
    assert_array(y, as_numpy(ty), dtype, rtol=0, atol=0)
    assert_array(idx, as_numpy(tidx), np.int64)
    assert_array(adaptive_pool(x, outs, mode="avg"), as_numpy(ADAPTIVE_AVG[dims](to_torch(x), outs)),
                 dtype, **_tol(dtype))


def test_adaptive_none_keeps_an_axis():
    x = distinct((2, 5, 7), 0)
    ty = F.adaptive_avg_pool2d(to_torch(x), (5, 3))
    assert_array(adaptive_pool(x, (None, 3)), as_numpy(ty), np.float64, rtol=1e-12)


# ---------------------------------------------------------------- unpool


@pytest.mark.parametrize("dims", [1, 2, 3])
@FIXED
@given(data=st.data())
def test_unpool_matches_torch_max_unpool(dims, data):
    g = data.draw(geometries(dims, dilation=False))
    x = distinct(g["shape"], g["seed"])
    y, idx = pool(x, g["window"], g["stride"], padding=g["padding"], ceil_mode=g["ceil_mode"],
                  return_indices=True)
    ty, tidx = MAX_POOL[dims](to_torch(x), g["window"], g["stride"], g["padding"],
                              ceil_mode=g["ceil_mode"], return_indices=True)
    expected = MAX_UNPOOL[dims](ty, tidx, g["window"], g["stride"], g["padding"],
                                output_size=x.shape[-dims:])
    axes = tuple(range(-dims, 0))  # with the full shape, unpool needs the pooled axes
    assert_array(unpool(y, idx, x.shape, axes=axes), as_numpy(expected), np.float64, rtol=0, atol=0)
    assert_array(unpool(y, idx, x.shape[-dims:]), as_numpy(expected), np.float64, rtol=0, atol=0)


# ---------------------------------------------------------------- gradients


def torch_forward(mode, dims, t, g, keywords):
    """PyTorch's forward for our mode (sum: avg with divisor_override=1; 1-D through 2-D)."""
    if mode in ("max", "min"):
        sign = -1 if mode == "min" else 1
        return sign * MAX_POOL[dims](sign * t, g["window"], g["stride"], g["padding"], g["dilation"],
                                     ceil_mode=g["ceil_mode"])
    if mode == "lp":
        return lp_pool(dims, t, keywords["p"], g)
    override = 1 if mode == "sum" else keywords.get("divisor_override")
    include = keywords.get("count_include_pad", True)
    if dims == 1:
        y = F.avg_pool2d(t.unsqueeze(-2), (1, *g["window"]), (1, *g["stride"]), (0, *g["padding"]),
                         g["ceil_mode"], include, divisor_override=override)
        return y.squeeze(-2)
    return AVG_POOL[dims](t, g["window"], g["stride"], g["padding"], g["ceil_mode"], include,
                          divisor_override=override)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("mode", ["max", "min", "avg", "sum", "lp"])
@FIXED
@given(data=st.data())
def test_backward_matches_torch_autograd(mode, dims, data):
    avg_like = mode in ("avg", "sum", "lp")
    g = data.draw(geometries(dims, dilation=not avg_like, padding=mode != "lp",
                             overhang=mode != "lp", fits=dims == 3 and avg_like))
    keywords = {}
    if mode == "avg":
        keywords["count_include_pad"] = data.draw(st.booleans(), label="count_include_pad")
        keywords["divisor_override"] = data.draw(st.none() | st.integers(1, 7), label="divisor")
    if mode == "lp":
        keywords["p"] = data.draw(st.sampled_from([1.5, 2.0, 3.0]), label="p")
    x = distinct(g["shape"], g["seed"], positive=mode == "lp")
    t = to_torch(x, grad=True)
    y = torch_forward(mode, dims, t, g, keywords)
    grad_out = np.random.default_rng(g["seed"]).normal(size=tuple(y.shape))
    y.backward(to_torch(grad_out))
    geometry = dict(padding=g["padding"], ceil_mode=g["ceil_mode"])
    if not avg_like:
        geometry["dilation"] = g["dilation"]
    grad = pool_backward(grad_out, x, g["window"], g["stride"], mode=mode, **geometry, **keywords)
    assert_array(grad, as_numpy(t.grad), np.float64, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg", "lp"])
def test_backward_float32_matches_torch(mode):
    x = distinct((2, 3, 9, 8), 5, np.float32, positive=True)
    g = dict(window=(3, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=True)
    if mode == "lp":
        g["ceil_mode"] = False
    keywords = {"p": 2.0} if mode == "lp" else {}
    t = to_torch(x, grad=True)
    y = torch_forward(mode, 2, t, g, keywords)
    grad_out = np.random.default_rng(0).normal(size=tuple(y.shape)).astype(np.float32)
    y.backward(to_torch(grad_out))
    grad = pool_backward(grad_out, x, g["window"], g["stride"], mode=mode, ceil_mode=g["ceil_mode"],
                         **keywords)
    assert_array(grad, as_numpy(t.grad), np.float32, rtol=1e-5, atol=1e-6)
