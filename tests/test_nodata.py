"""`nodata`: cells equal to it are skipped by every mode, for every dtype (engine/missing.py).

The engine against the brute force (tests/reference.py drops missing cells before each window's
reduction) over random geometries, dtypes and modes; the indices and the backward pass; the
fast paths switched on and off; streamed and Dask results equal to in-memory ones.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from block_cases import pooled_shapes
from block_cases import values as block_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import adaptive_ref, assert_array, expected_dtype, pool_backward_ref, pool_ref, round_half_up
from test_engine_reference import FIXED, _geometry, _valid
from test_engine_reference import cases as reference_cases

from poolcli import PoolError, adaptive_pool, engine, pool, pool_backward
from poolcli.core.modes import names
from poolcli.core.spec import PoolSpec
from poolcli.stream.pooling import output_dtype, stream_pool, streamed_plan
from poolcli.stream.sources import Source

MODES = names()
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64")
TOLERANCE = {"float16": 2e-3, "float32": 2e-6}
QUICK = settings(FIXED, max_examples=120)  # each property well under 5 s (FIXED: 300)


def with_nodata(rng, x: np.ndarray, dtype: str, share: float = 0.4):
    """`x` cast to `dtype` (small values, ties aplenty) with about `share` of its cells a nodata
    value drawn from the dtype's values (NaN now and then for floats); and that value."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        data, nodata = rng.random(x.shape) < 0.5, int(rng.integers(0, 2))
    else:
        low = 0 if dtype.kind == "u" else -4
        data = rng.integers(low, low + 9, size=x.shape).astype(dtype)
        nodata = int(rng.integers(low, low + 9))
        if dtype.kind == "f":
            data[np.isnan(x)] = np.nan
            if rng.random() < 0.2:
                nodata = float("nan")
    missing = rng.random(x.shape) < share
    data[missing] = nodata
    return data, nodata


def _expected(x, values, mode):
    want = expected_dtype(x.dtype, mode)
    return (round_half_up(values, want) if want.kind in "biu" else values.astype(want)), want


@QUICK
@given(case=reference_cases(modes=MODES), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_nodata_matches_the_reference(case, dtype, seed):
    """Every mode and dtype, 1-3 pooled axes, padding, stride, dilation, ceil mode, pad modes."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    x, nodata = with_nodata(np.random.default_rng(seed), x, dtype)
    keywords = dict(keywords, nodata=nodata)
    mode = keywords["mode"]
    expected, want = _expected(x, pool_ref(x, window, stride, **keywords), mode)
    tolerance = TOLERANCE.get(str(want), 1e-12)
    assert_array(pool(x, window, stride, **keywords), expected, want, rtol=tolerance, atol=tolerance)
    if mode in names(indices=True):
        y, idx = pool(x, window, stride, return_indices=True, **keywords)
        y_ref, idx_ref = pool_ref(x, window, stride, return_indices=True, **keywords)
        assert_array(y, _expected(x, y_ref, mode)[0], want)
        keep = ~np.isnan(y_ref) if keywords["nan_policy"] == "propagate" else np.ones(y_ref.shape, bool)
        assert_array(idx[keep], idx_ref[keep], np.int64)  # which NaN an index names is PyTorch's business


@QUICK
@given(case=reference_cases(modes=MODES, data_kinds=("float", "nan")), seed=st.integers(0, 2**32 - 1))
def test_nodata_backward_matches_the_reference(case, seed):
    """Missing cells get no gradient, and windows of missing cells alone send none."""
    x, window, stride, keywords = case
    rows = _geometry(x, window, stride, keywords)
    if not _valid(rows):
        return
    rng = np.random.default_rng(seed)
    if keywords["nan_policy"] == "propagate":
        x = np.where(np.isnan(x), 0.5, x)
    finite = ~np.isnan(x)
    x[finite] = rng.permutation(int(finite.sum())) / 7 - 1  # distinct: no tie decides a route
    x[rng.random(x.shape) < 0.4] = -9999.0
    keywords = dict(keywords, nodata=-9999)
    grad = rng.normal(size=pool(x, window, stride, **keywords).shape)
    expected = pool_backward_ref(grad, x, window, stride, **keywords)
    assert_array(pool_backward(grad, x, window, stride, **keywords), expected, np.float64, rtol=1e-10, atol=1e-12)


@QUICK
@given(data=st.data())
def test_adaptive_nodata_matches_the_reference(data):
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = data.draw(st.tuples(*[st.integers(1, 6)] * ndim), label="shape")
    axes = data.draw(st.permutations(range(ndim)), label="order")[:data.draw(st.integers(1, ndim))]
    sizes = tuple(data.draw(st.integers(1, shape[a] + 1)) for a in axes)
    mode = data.draw(st.sampled_from(MODES), label="mode")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x, nodata = with_nodata(rng, np.zeros(shape), dtype)
    keywords = dict(mode=mode, axes=axes, nodata=nodata, p=3.0)
    expected, want = _expected(x, adaptive_ref(x, sizes, **keywords), mode)
    tolerance = TOLERANCE.get(str(want), 1e-12)
    assert_array(adaptive_pool(x, sizes, **keywords), expected, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("mode", MODES)
def test_a_window_of_nodata_alone_gives_the_nodata(mode):
    x = np.array([1, -9, 3, -9, -9, 5], np.int16)
    y = pool(x, 2, mode=mode, nodata=-9)
    assert y.tolist() == [1, 3, 5] or y.tolist() == [1.0, 3.0, 5.0]
    assert pool(np.full(4, -9, np.int16), 2, mode=mode, nodata=-9).tolist() in ([-9, -9], [-9.0, -9.0])


def test_nodata_is_exact_on_64_bit_integers_and_their_wide_sums():
    big = np.iinfo(np.int64).max
    x = np.array([big, big, 0, big, 7, 7], np.int64)
    assert pool(x, 3, mode="sum", nodata=0).tolist() == [big, big]  # 2 * big clips, as without nodata
    assert pool(x, 3, mode="avg", nodata=7, dtype=np.int64).tolist() == [(4 * big + 3) // 6, big]  # exact, half up
    assert pool(x, 3, mode="avg", nodata=0).tolist() == [float(big), pool(x[3:], 3, mode="avg").item()]
    assert pool(x, 2, mode="median", nodata=big).tolist() == [big, 0, 7]
    u = np.array([2**64 - 1, 5, 2**64 - 1, 2**64 - 1], np.uint64)
    assert pool(u, 2, mode="max", nodata=2**64 - 1).tolist() == [5, 2**64 - 1]


def test_an_integer_mean_rounds_over_the_cells_left():
    x = np.array([[2, 3], [255, 255]], np.uint8)
    assert pool(x, 2, mode="avg", nodata=255, dtype=np.uint8).item() == 3  # (2 + 3) / 2 = 2.5, half up
    assert pool(x, 2, mode="avg", nodata=255).item() == 2.5
    assert pool(x, 2, mode="avg", nodata=255, count_include_pad=False, divisor_override=4).item() == 1.25


def test_nodata_and_nan_policy():
    """NaN cells follow nan_policy; nodata cells are skipped under both; a window left with no
    real cell (nodata and, under 'omit', NaN) gives the nodata."""
    x = np.array([1.0, -1, np.nan, -1, np.nan, np.nan])
    assert np.array_equal(pool(x, 2, nodata=-1), [1.0, np.nan, np.nan], equal_nan=True)
    assert pool(x, 2, nodata=-1, nan_policy="omit").tolist() == [1.0, -1.0, -1.0]
    assert np.array_equal(pool(x, 2, mode="avg", nodata=float("nan")), [0.0, -1.0, np.nan], equal_nan=True)


def test_indices_and_backward_of_nodata():
    x = np.array([7.0, 1, 7, 7, 3, 7])
    y, idx = pool(x, 2, return_indices=True, nodata=7)
    assert y.tolist() == [1.0, 7.0, 3.0] and idx.tolist() == [1, 2, 4]  # an empty window: its first cell
    assert pool_backward(np.ones(3), x, 2, nodata=7).tolist() == [0, 1, 0, 0, 1, 0]
    assert pool_backward(np.ones(3), x, 2, mode="avg", nodata=7).tolist() == [0, 1, 0, 0, 1, 0]


@pytest.mark.parametrize(("nodata", "dtype"), [(-9999, np.uint8), (256, np.uint8), (0.5, np.int32),
                                               (float("nan"), np.int16), (2, np.bool_), (-9999.5, np.float16),
                                               (1e-40, np.float32)])
def test_a_nodata_the_dtype_cannot_hold_is_refused(nodata, dtype):
    x = np.zeros(4, dtype)
    for call in (lambda: pool(x, 2, nodata=nodata), lambda: adaptive_pool(x, 3, nodata=nodata),
                 lambda: pool_backward(np.ones(2), x, 2, nodata=nodata),
                 lambda: pool(da.from_array(x, chunks=2), 2, nodata=nodata)):
        with pytest.raises(PoolError, match=r"^nodata .* cannot be held by the input's dtype"):
            call()


@pytest.mark.parametrize("bad", ["-9999", True, [1], 1 + 2j])
def test_a_nodata_that_is_not_a_number_is_refused(bad):
    with pytest.raises(PoolError, match="^nodata .* must be a number"):
        pool(np.zeros(4), 2, nodata=bad)


def test_nodata_that_no_cell_holds_changes_no_bit():
    x = np.random.default_rng(0).normal(size=(9, 11)).astype(np.float32)
    for mode in MODES:
        plain = pool(x, 3, 2, mode=mode, padding=1)
        assert pool(x, 3, 2, mode=mode, padding=1, nodata=-9999).tobytes() == plain.tobytes()


# ---------------------------------------------------------------- twins, streaming, Dask

SWITCHES = tuple(vars(engine.FastPaths()))


@pytest.fixture
def forced_on(monkeypatch):
    monkeypatch.setattr(engine.BUDGETS, "min_parallel_bytes", 0)
    monkeypatch.setattr(engine.BUDGETS, "chunk_bytes", 16)
    monkeypatch.setattr(engine.BUDGETS, "window_wise_ratio", 0)
    monkeypatch.setattr(engine.BUDGETS, "median_block_bytes", 64)
    monkeypatch.setenv("POOLCLI_THREADS", "2")


@st.composite
def block_cases(draw, side: int = 12):
    shape, keywords = draw(pooled_shapes(side=side))
    keywords["mode"] = draw(st.sampled_from(MODES))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x, nodata = with_nodata(rng, block_values(rng, shape, np.float64), dtype, draw(st.sampled_from((0.1, 0.6))))
    return x, dict(keywords, nodata=nodata), draw(st.integers(1, 2000)), tuple(draw(st.integers(1, n)) for n in shape)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=block_cases())
def test_every_fast_path_gives_the_general_paths_bits(forced_on, case):
    x, keywords, _, _ = case
    try:
        fast = pool(x, **keywords)
    except PoolError:
        return
    with engine.fast_paths(**dict.fromkeys(SWITCHES, False)):
        slow = pool(x, **keywords)
    assert fast.dtype == slow.dtype and fast.tobytes() == slow.tobytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=block_cases())
def test_streamed_and_dask_nodata_are_the_in_memory_bits(case):
    x, keywords, memory, chunks = case
    try:
        expected = pool(x, **keywords)
    except PoolError:
        return
    spec = PoolSpec(**keywords)
    plan = streamed_plan(x.shape, spec)
    out = np.zeros(plan.out_shape, dtype=output_dtype(x.dtype, keywords["mode"], None))

    def write(index, block):
        out[index] = block

    try:
        stream_pool(Source(Path("memory"), x, "array", "NPY", x.shape), write, spec, None,
                    memory=memory * x.dtype.itemsize)
    except PoolError as error:
        assert "does not fit" in str(error)
    else:
        assert out.tobytes() == expected.tobytes()
    lazy = pool(da.from_array(x, chunks=chunks), **keywords).compute(scheduler="sync")
    assert lazy.dtype == expected.dtype and lazy.tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", MODES)
def test_dask_backward_and_adaptive_nodata_are_the_numpy_bits(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(13, 17))
    x[rng.random(x.shape) < 0.4] = -9
    lazy = da.from_array(x, chunks=(4, 5))
    grad = rng.normal(size=(6, 8))
    expected = pool_backward(grad, x, 3, 2, mode=mode, nodata=-9)
    assert pool_backward(grad, lazy, 3, 2, mode=mode, nodata=-9).compute().tobytes() == expected.tobytes()
    expected = adaptive_pool(x, (5, 7), mode=mode, nodata=-9)
    assert adaptive_pool(lazy, (5, 7), mode=mode, nodata=-9).compute().tobytes() == expected.tobytes()
