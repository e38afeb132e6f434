"""Dask arrays: `pool` returns a lazy array, one task per output chunk, whose blocks are the bits of
pooling the whole NumPy array (the engine's result, itself checked against PyTorch elsewhere)."""

import dask
import dask.array as da
import numpy as np
import pytest
from block_cases import DTYPES, MODES, pooled_shapes, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolcli import PoolError, adaptive_pool, pool, pool_backward
from poolcli.engine.lazy import graph_size


@st.composite
def cases(draw):
    shape, keywords = draw(pooled_shapes(side=16))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    return shape, chunks, keywords, draw(st.sampled_from(DTYPES)), draw(st.integers(0, 10**6))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_lazy_pooling_is_bit_identical_to_numpy(case):
    shape, chunks, keywords, dtype, seed = case
    x = values(np.random.default_rng(seed), shape, dtype)
    try:
        expected = pool(x, **keywords)
    except PoolError:
        with pytest.raises(PoolError):
            pool(da.from_array(x, chunks=chunks), **keywords)
        return
    lazy = pool(da.from_array(x, chunks=chunks), **keywords)
    assert isinstance(lazy, da.Array) and lazy.shape == expected.shape and lazy.dtype == expected.dtype
    actual = lazy.compute(scheduler="sync")
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


def test_one_task_per_output_chunk_and_chunks_follow_the_stride():
    x = da.zeros((8, 4096, 4096), dtype=np.uint8, chunks=(1, 1024, 1024))
    y = pool(x, 2, axes=(1, 2), mode="avg")
    assert y.chunks == ((1,) * 8, (512,) * 4, (512,) * 4)  # each input chunk makes one output chunk
    assert len(y.dask.layers[y.name]) == graph_size(y) == 8 * 4 * 4
    assert len(dict(y.__dask_graph__())) == 2 * 8 * 4 * 4  # and the input's own chunks: nothing else


def test_windows_that_cross_chunks_read_their_halo():
    x = np.arange(40.0).reshape(8, 5)
    lazy = pool(da.from_array(x, chunks=(3, 5)), 3, 2, padding=1, mode="sum", axes=(0,))
    np.testing.assert_array_equal(lazy.compute(), pool(x, 3, 2, padding=1, mode="sum", axes=(0,)))
    assert lazy.numblocks[0] >= 2


def test_lp_scaling_is_decided_on_the_whole_array():
    """One huge value in one chunk makes lp scale its p-norm everywhere, as in memory."""
    x = np.random.default_rng(1).random((12, 12)) + 1
    x[0, 0] = 1e200
    lazy = pool(da.from_array(x, chunks=4), 2, mode="lp", p=3.0)
    np.testing.assert_array_equal(lazy.compute(), pool(x, 2, mode="lp", p=3.0))


def test_what_is_not_offered_says_so():
    x = da.zeros((8, 8), chunks=4)
    with pytest.raises(PoolError, match="return_indices"):
        pool(x, 2, return_indices=True)


def test_a_virtual_petabyte_builds_its_graph_without_computing():
    """dask.array.zeros of 1 PB: the graph is built (one task per output chunk), nothing computed."""
    big = da.zeros((2**20, 2**20, 2**10), dtype=np.uint8, chunks=(512, 32768, 32768))
    with dask.config.set(scheduler="sync"):
        lazy = pool(big, 2, axes=(1, 2), mode="max")
    assert lazy.shape == (2**20, 2**19, 2**9) and graph_size(lazy) == 2048 * 32  # 1024 columns: one chunk


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(1, 6))
def test_lazy_backward_is_bit_identical_to_numpy(case, grad_chunk):
    """dL/dx chunk by chunk: the windows that reach into each chunk (edge and reflect pads fold
    their gradient into the rows they copy) give the NumPy backward pass's bits."""
    shape, chunks, keywords, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = np.round(rng.random(shape) * 4)  # ties: max and median route to the first
    try:
        y = pool(x, **keywords)
        grad = rng.random(y.shape)
        expected = pool_backward(grad, x, **keywords)
    except PoolError:
        return
    lazy = pool_backward(da.from_array(grad, chunks=grad_chunk), da.from_array(x, chunks=chunks), **keywords)
    assert isinstance(lazy, da.Array) and lazy.chunks == da.from_array(x, chunks=chunks).chunks
    actual = lazy.compute(scheduler="sync")
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("mode", MODES)
def test_lazy_adaptive_pool_is_bit_identical_to_numpy(mode):
    x = values(np.random.default_rng(3), (4, 37, 29), np.float32)
    for size in (1, (5, 7), (None, 3)):
        lazy = adaptive_pool(da.from_array(x, chunks=(1, 10, 8)), size, mode=mode, axes=(1, 2))
        expected = adaptive_pool(x, size, mode=mode, axes=(1, 2))
        assert lazy.numblocks[0] == 4  # one task per block of the unpooled axis
        np.testing.assert_array_equal(lazy.compute(scheduler="sync"), expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.data())
def test_the_backward_pass_of_a_region_is_its_rows_of_the_whole(case, data):
    """The inspector's routing of a region of a large input: only the windows that reach it, the
    whole backward pass's values there (edge and reflect pads folded in)."""
    from poolcli.core.geometry import plan_pool
    from poolcli.core.spec import PoolSpec
    from poolcli.engine import backward_with
    from poolcli.engine.lazy import region_backward

    shape, _, keywords, _, seed = case
    x = np.round(np.random.default_rng(seed).random(shape) * 4)
    try:
        y = pool(x, **keywords)
        whole = pool_backward(np.ones(y.shape), x, **keywords)
    except PoolError:
        return
    plan = plan_pool(x.shape, **keywords)
    ranges = {}
    for axis in plan.pooled_axes:
        start = data.draw(st.integers(0, shape[axis] - 1))
        ranges[axis] = (start, data.draw(st.integers(start + 1, shape[axis])))
    got = region_backward(x, plan, PoolSpec(**keywords), ranges, backward_with)
    cut = tuple(slice(*ranges[a]) if a in ranges else slice(None) for a in range(x.ndim))
    np.testing.assert_array_equal(got, whole[cut])
