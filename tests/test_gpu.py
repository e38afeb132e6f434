"""CuPy on a CUDA device against the NumPy engine: every mode, forward and backward.

Skipped where no CUDA device is usable (as in CI), with the reason. Set
POOLCLI_REQUIRE_GPU=1 on a GPU machine: then a missing CuPy or device fails the run
instead of skipping it (a requested GPU backend that is missing must not pass silently).

    POOLCLI_REQUIRE_GPU=1 python -m pytest -m gpu -q tests/test_gpu.py

Max/min values and indices must be bit-identical (and backward max/min, whose gradients
here are small integers); sums, means and norms within a float tolerance
(tests/pool_cases.py). The same random cases also run on the CPU through the kernels'
host build (test_backend.py), so a failure here that does not show there points at the
device side: compilation, launch arguments, or CuPy itself.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from pool_cases import FUSED_MODES, Case, assert_matches, random_case

from poolcli import PoolError, adaptive_pool, backends, pool, pool_backward, unpool
from poolcli.backends import cuda

pytestmark = pytest.mark.gpu

_REASON = backends.gpu_unavailable_reason()
if _REASON is not None:
    if os.environ.get("POOLCLI_REQUIRE_GPU") == "1":
        pytest.fail(f"POOLCLI_REQUIRE_GPU=1 but the GPU backend is unusable: {_REASON}", pytrace=False)
    pytest.skip(f"no usable CUDA device ({_REASON}); set POOLCLI_REQUIRE_GPU=1 to make this an error",
                allow_module_level=True)

cp = backends.import_cupy()


def on_gpu(a):
    return cp.asarray(a)


def to_host(result):
    """The result moved back, after checking it lives on the GPU."""
    if isinstance(result, tuple):
        return tuple(to_host(r) for r in result)
    assert isinstance(result, cp.ndarray), type(result)
    return result.get()


def check(case: Case):
    expected = case.run()
    actual = to_host(case.run(on_gpu))
    assert_matches(actual, expected, case)


@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("kind", ["pool", "adaptive", "backward"])
def test_random_cases_match_numpy(kind, mode):
    for seed in range(20):
        check(random_case(np.random.default_rng([seed, len(kind), len(mode), ord(mode[-1]), 1]), kind, mode))


@pytest.mark.parametrize("mode", FUSED_MODES + ("median",))
@pytest.mark.parametrize("kind", ["pool", "adaptive", "backward"])
def test_generic_path_on_cupy_matches_numpy(monkeypatch, kind, mode):
    """The engine's own code on CuPy arrays (median, and whatever a kernel does not cover)."""
    monkeypatch.setenv("POOLCLI_FUSED", "0")
    for seed in range(6):
        check(random_case(np.random.default_rng([seed, len(kind), len(mode), 2]), kind, mode))


def test_median_falls_back_to_the_engine():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 9, size=(2, 7, 9)).astype(np.float32)
    check(Case("pool", x, dict(window=3, stride=2, padding=1, mode="median")))
    check(Case("backward", x, dict(window=3, stride=2, mode="median"), np.ones((2, 3, 4), np.float32)))


@pytest.mark.parametrize("tuning", [dict(items=1), dict(items=2), dict(items=4), dict(index64=True),
                                    dict(threads=128)])
def test_kernel_variants_agree(monkeypatch, tuning):
    monkeypatch.setattr(cuda, "TUNING", {**cuda.TUNING, **tuning})
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, size=(2, 3, 33, 70)).astype(np.float32)
    for keywords in (dict(window=3, stride=2, padding=1, return_indices=True), dict(window=2, mode="avg"),
                     dict(window=(3, 2), stride=1, dilation=2, mode="l2"),
                     dict(window=3, stride=2, ceil_mode=True, mode="lp", p=3)):
        check(Case("pool", x, keywords))
    check(Case("backward", x, dict(window=3, stride=2, padding=1), np.ones((2, 3, 17, 35), np.float32)))


def test_layouts_and_views():
    rng = np.random.default_rng(2)
    hwc = rng.integers(0, 256, size=(31, 47, 3)).astype(np.uint8)
    check(Case("pool", hwc, dict(window=2, axes=(0, 1), mode="avg", dtype="uint8")))
    check(Case("pool", hwc, dict(window=3, stride=2, axes=(0, 1), return_indices=True)))
    apart = rng.standard_normal((6, 5, 9)).astype(np.float64)
    check(Case("pool", apart, dict(window=(2, 3), axes=(2, 0), mode="lp", p=1.5)))
    view = rng.standard_normal((4, 10, 12)).astype(np.float32)[:, ::2, 1:]
    check(Case("pool", view, dict(window=2, mode="sum")))
    check(Case("pool", np.zeros((0, 3, 20), np.float32), dict(window=2)))


def test_unpool_routes_back_on_the_gpu():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    y, idx = pool(x, 2, return_indices=True)
    gy, gidx = pool(on_gpu(x), 2, return_indices=True)
    np.testing.assert_array_equal(gidx.get(), idx)
    restored = unpool(gy, gidx, x.shape)
    assert isinstance(restored, cp.ndarray)
    np.testing.assert_array_equal(restored.get(), unpool(y, idx, x.shape))


def test_results_live_on_the_gpu_for_every_function():
    x = on_gpu(np.arange(36.0, dtype=np.float32).reshape(6, 6))
    assert isinstance(pool(x, 2), cp.ndarray)
    assert isinstance(adaptive_pool(x, 4, mode="max"), cp.ndarray)
    assert isinstance(pool_backward(cp.ones((3, 3), np.float32), x, 2, mode="avg"), cp.ndarray)
    assert isinstance(pool_backward(np.ones((3, 3), np.float32), x, 2), cp.ndarray)


def test_errors_stay_pool_errors_on_the_gpu():
    with pytest.raises(PoolError, match="window"):
        pool(on_gpu(np.zeros((2, 2))), 5)


def test_auto_backend_moves_large_inputs_only():
    small = np.zeros(16, np.float32)
    large = np.zeros(backends.GPU_CROSSOVER_BYTES // 4, np.float32)
    assert isinstance(backends.to_device(small, "auto"), np.ndarray)
    assert isinstance(backends.to_device(large, "auto"), cp.ndarray)
