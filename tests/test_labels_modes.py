"""majority and nearest (docs/semantics.md, section 3) against the brute force of tests/reference.py.

Random geometries (padding, stride, dilation, ceil mode, edge/reflect pads, 1-3 pooled axes)
over every dtype, with few distinct values so that ties are common, NaN and -0.0 among floats
and values near 2**63 among 64-bit integers (compared exactly, never through float64). Every
case runs with each shortcut forced on and off (majority by pairs, by a histogram, by sorting;
windows gathered through strided views or index arrays; nearest by slices or gathered windows;
blocks of one window) and must give the same bits, the
reference's values and the reference's indices. The backward pass routes to those indices. The
generic code runs under a namespace that only has what CuPy has (no GPU here).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import padding_only_windows, plan, pool_backward_ref, pool_ref

from poolcli import engine, pool, pool_backward
from poolcli.core.geometry import plan_pool
from poolcli.engine import fast_paths
from poolcli.engine.forward import chosen_cells

DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64")
LABEL_MODES = ("majority", "nearest")

SHORTCUTS = {  # name: (switches, budgets)
    "default": ({}, {}),
    "pairs": ({"majority_pairs": True}, {"majority_pair_taps": 10**6}),
    "histogram": ({"majority_pairs": False, "majority_histogram": True}, {"majority_histogram_taps": 1}),
    "sorting": ({"majority_pairs": False, "majority_histogram": False, "nearest_slices": False}, {}),
    "index gathers": ({"majority_pairs": False, "majority_run_starts": False, "window_views": False,
                       "nearest_slices": False}, {}),
    "tiny blocks": ({"majority_pairs": False, "nearest_slices": False}, {"median_block_bytes": 1}),
}


def label_values(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    """Few distinct values (ties are common); NaN and -0.0 among floats, huge ones among 64-bit ints."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    kind = np.dtype(dtype).kind
    palette = {"f": [0.0, -0.0, 1.5, -2.0, np.nan, np.inf], "i": [-3, 0, 2, 5], "u": [0, 2, 5, 7]}[kind]
    if dtype == "int64":
        palette = [-(2**63), 2**63 - 1, 2**63 - 2, 3]
    elif dtype == "uint64":
        palette = [2**64 - 1, 2**64 - 2, 0, 9]
    choice = rng.integers(0, len(palette), shape)
    return np.array(palette, dtype=object)[choice].astype(dtype)


@st.composite
def cases(draw):
    count = draw(st.integers(1, 3))
    batch = draw(st.integers(0, 1))
    sides = [draw(st.integers(1, 6 if count < 3 else 4)) for _ in range(count)]
    shape = tuple([2] * batch + sides)
    axes = tuple(range(batch, batch + count))
    window = tuple(draw(st.integers(1, 3)) for _ in axes)
    dilation = tuple(draw(st.integers(1, 2)) for _ in axes)
    spans = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    padding = tuple((draw(st.integers(0, s - 1)), draw(st.integers(0, s - 1))) for s in spans)
    keywords = dict(window=window, stride=tuple(draw(st.integers(1, 3)) for _ in axes), dilation=dilation,
                    padding=padding, ceil_mode=draw(st.booleans()), axes=axes,
                    pad_mode=draw(st.sampled_from(("zeros", "edge", "reflect"))),
                    nan_policy=draw(st.sampled_from(("propagate", "omit"))), mode=draw(st.sampled_from(LABEL_MODES)))
    rows = plan(shape, window, keywords["stride"], padding=padding, dilation=dilation,
                ceil_mode=keywords["ceil_mode"], axes=axes)
    if any(row["out"] < 1 or padding_only_windows(row) for row in rows):
        keywords.update(padding=0, dilation=1, ceil_mode=False, window=1, stride=1)
    dtype = draw(st.sampled_from(DTYPES))
    return label_values(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), shape, dtype), keywords


def values_at(x: np.ndarray, indices: np.ndarray, axes) -> np.ndarray:
    """x's cells at flat `indices` over the pooled `axes` (exact, any dtype)."""
    last = tuple(range(x.ndim - len(axes), x.ndim))
    moved = np.moveaxis(x, axes, last)
    flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (-1,))
    chosen = np.moveaxis(indices, axes, last)
    picked = np.take_along_axis(flat, chosen.reshape(chosen.shape[: x.ndim - len(axes)] + (-1,)), axis=-1)
    return np.moveaxis(picked.reshape(chosen.shape), last, axes)


def run_with(name: str, monkeypatch, x, keywords):
    switches, budgets = SHORTCUTS[name]
    with monkeypatch.context() as patch, fast_paths(**switches):
        for field, size in budgets.items():
            patch.setattr(engine.BUDGETS, field, size)
        plain = pool(x, **keywords)
        y, indices = pool(x, **keywords, return_indices=True)
    return plain, y, indices


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(cases())
def test_majority_and_nearest_equal_the_brute_force_on_every_path(monkeypatch, case):
    x, keywords = case
    _, expected_indices = pool_ref(x, **keywords, return_indices=True)
    expected = values_at(x, expected_indices, keywords["axes"])
    omitted_nan = np.isnan(pool_ref(x, **keywords)) if x.dtype.kind == "f" else None
    for name in SHORTCUTS:
        plain, y, indices = run_with(name, monkeypatch, x, keywords)
        assert type(y) is np.ndarray and y.dtype == x.dtype and y.shape == expected.shape, name
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(indices, expected_indices, err_msg=name)
        assert y.tobytes() == expected.tobytes() == plain.tobytes(), name
        if omitted_nan is not None:
            np.testing.assert_array_equal(np.isnan(y), omitted_nan)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_the_backward_pass_routes_to_the_chosen_cell(case):
    x, keywords = case
    x = x.astype(np.float64) if x.dtype.kind != "f" else x
    grad = np.random.default_rng(0).normal(size=pool(x, **keywords).shape)
    actual = pool_backward(grad, x, **keywords)
    assert actual.dtype == x.dtype
    np.testing.assert_allclose(actual.astype(np.float64), pool_backward_ref(grad, x, **keywords), rtol=1e-3)


def test_worked_examples():
    labels = np.array([[1, 2, 2, 3], [1, 1, 5, 5], [7, 7, 0, 1], [8, 8, 1, 0]], np.uint8)
    y, indices = pool(labels, 2, mode="majority", return_indices=True)
    assert y.tolist() == [[1, 5], [7, 0]] and indices.tolist() == [[0, 6], [8, 10]]  # ties: the smaller label
    assert pool(labels, 2, mode="nearest").tolist() == [[1, 2], [7, 0]]
    assert np.isnan(pool(np.array([1.0, np.nan, 1, 2]), 4, mode="majority")).all()
    assert pool(np.array([1.0, np.nan, 1, 2]), 4, mode="majority", nan_policy="omit").tolist() == [1.0]
    assert pool(np.array([5, 1, 9]), 3, 1, padding=1, mode="nearest").tolist() == [5, 5, 1]
    assert pool(np.array([-0.0, 0.0, 3.0]), 3, mode="majority").tobytes() == np.array([-0.0]).tobytes()


def test_nearest_is_a_strided_slice():
    x = np.random.default_rng(1).integers(0, 1000, (3, 17, 23)).astype(np.int32)
    for k in (1, 2, 3, 4):
        np.testing.assert_array_equal(pool(x, k, mode="nearest"), x[:, : 17 // k * k : k, : 23 // k * k : k])
    np.testing.assert_array_equal(pool(x, 2, 3, mode="nearest", ceil_mode=True), x[:, ::3, ::3])


@pytest.mark.parametrize("dtype", ["uint8", "int8", "bool", "uint16", "float32"])
@pytest.mark.parametrize("window", [2, 3, 9])
def test_large_windows_take_every_path_alike(monkeypatch, dtype, window):
    """Bigger inputs than the brute force can take: every path against the sorting one."""
    x = label_values(np.random.default_rng(window), (3, 40, 37), dtype)
    keywords = dict(window=window, stride=max(1, window - 1), padding=window // 2, mode="majority",
                    nan_policy="omit")
    results = {name: run_with(name, monkeypatch, x, keywords) for name in SHORTCUTS}
    for name, (plain, y, indices) in results.items():
        assert plain.tobytes() == y.tobytes() == results["sorting"][1].tobytes(), name
        np.testing.assert_array_equal(indices, results["sorting"][2], err_msg=name)


CUPY_NAMES = ("sort", "lib", "argsort", "take_along_axis", "bincount", "cumsum", "argmax", "where", "broadcast_to",
              "isnan", "ones", "zeros", "empty", "arange", "moveaxis", "ascontiguousarray", "asarray", "take")


def test_the_generic_code_runs_on_a_namespace_with_only_cupys_functions(monkeypatch):
    """What runs on a CuPy array (these modes have no fused kernel): the same code on a namespace of
    the functions CuPy offers, which is not NumPy itself, so no NumPy-only shortcut is taken."""
    xp = types.SimpleNamespace(**{name: getattr(np, name) for name in CUPY_NAMES})
    x = label_values(np.random.default_rng(5), (2, 9, 11), "float32")
    for mode in LABEL_MODES:
        for nan_policy in ("propagate", "omit"):
            the_plan = plan_pool(x.shape, 3, 2, padding=1, mode=mode, nan_policy=nan_policy, ceil_mode=True)
            for name in ("pairs", "sorting"):
                switches, budgets = SHORTCUTS[name]
                with monkeypatch.context() as patch, fast_paths(**switches):
                    for field, size in budgets.items():
                        patch.setattr(engine.BUDGETS, field, size)
                    y, indices = chosen_cells(xp, x, the_plan, the_plan.pooled_shape)
                expected, expected_indices = pool(x, 3, 2, padding=1, mode=mode, nan_policy=nan_policy,
                                                  ceil_mode=True, return_indices=True)
                assert y.tobytes() == expected.tobytes() and np.array_equal(indices, expected_indices)


def test_return_indices_is_offered_and_other_modes_still_refuse():
    from poolcli import PoolError

    with pytest.raises(PoolError, match="majority"):
        pool(np.zeros(4), 2, mode="avg", return_indices=True)


@pytest.mark.parametrize("mode", LABEL_MODES)
@pytest.mark.parametrize("dtype", ["uint8", "int64", "float32"])
def test_adaptive_bins_choose_as_the_brute_force(mode, dtype):
    from reference import adaptive_ref

    from poolcli import adaptive_pool

    x = label_values(np.random.default_rng(7), (2, 7, 9), dtype)
    for size in ((3, 4), (7, 2), (1, 1), (5, None)):
        y, indices = adaptive_pool(x, size, mode=mode, nan_policy="omit", return_indices=True)
        _, expected = adaptive_ref(x, size, mode=mode, nan_policy="omit", return_indices=True)
        np.testing.assert_array_equal(indices, expected)
        assert y.dtype == x.dtype and y.tobytes() == values_at(x, expected, (1, 2)).tobytes()
