"""Random pooling calls, for comparing another backend with the NumPy engine.

Used by test_backend.py (the CUDA kernels run on the CPU) and test_gpu.py (CuPy on a GPU).
Each case is one public call: `pool`, `adaptive_pool` or `pool_backward`, with random
geometry (1-3 pooled axes anywhere in the array, padding, dilation, ceil mode), dtype,
mode, NaN policy, divisor options and requested dtype. Values are drawn from a small set
of integers half the time, so windows hold ties and the first-occurrence rule is tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from poolcli import PoolError, adaptive_pool, pool, pool_backward
from poolcli.core.geometry import plan_pool

FUSED_MODES = ("max", "min", "sum", "avg", "l2", "lp")
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "uint64", "float16", "float32", "float64")
REQUESTED = ("uint8", "int16", "int32", "float32", "float64")


@dataclass
class Case:
    kind: str  # 'pool', 'adaptive' or 'backward'
    x: np.ndarray
    keywords: dict
    grad: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"{self.kind}(x {self.x.dtype}{self.x.shape}, {self.keywords})"

    def run(self, to_backend=lambda a: a):
        """The call on this case's arrays, moved with `to_backend` first."""
        x = to_backend(self.x)
        if self.kind == "adaptive":
            return adaptive_pool(x, **self.keywords)
        if self.kind == "backward":
            return pool_backward(to_backend(self.grad), x, **self.keywords)
        return pool(x, **self.keywords)

    @property
    def exact(self) -> bool:
        """Whether another backend must match bit for bit (max/min values and indices)."""
        return self.keywords.get("mode", "avg" if self.kind == "adaptive" else "max") in ("max", "min")


def _values(rng, shape, dtype: np.dtype, nan: bool) -> np.ndarray:
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = (max(info.min, -4), min(info.max, 5)) if rng.random() < 0.6 else \
            (max(info.min, -(2**20)), min(info.max, 2**20))
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    if rng.random() < 0.6:
        x = rng.integers(-4, 5, size=shape).astype(dtype)
    else:
        x = (rng.standard_normal(shape) * 3).astype(dtype)
    if nan and rng.random() < 0.4:
        x[rng.random(shape) < 0.15] = np.nan
    if rng.random() < 0.1:
        x[rng.random(shape) < 0.1] = -np.inf if rng.random() < 0.5 else np.inf
    return x


def _geometry(rng, ndim: int):
    """Pooled axes (in a random order) and per-axis window/stride/dilation/padding."""
    m = int(rng.integers(1, min(3, ndim) + 1))
    axes = tuple(int(a) for a in rng.permutation(ndim)[:m])
    windows = [int(rng.integers(1, 5)) for _ in axes]
    strides = [int(rng.integers(1, 4)) for _ in axes]
    dilations = [int(rng.integers(1, 3)) if rng.random() < 0.3 else 1 for _ in axes]
    pads = []
    for k, d in zip(windows, dilations):
        span = d * (k - 1) + 1
        pads.append((int(rng.integers(0, min(span, 3))), int(rng.integers(0, min(span, 3)))))
    return axes, windows, strides, dilations, pads


def random_case(rng, kind: str = "pool", mode: str = "max", *, dtypes=DTYPES,
                pad_modes=("zeros", "zeros", "zeros", "edge", "reflect")) -> Case:
    """One random, valid call of `kind` in `mode` (drawn again until the geometry is valid)."""
    while True:
        dtype = np.dtype(str(rng.choice(dtypes)))
        ndim = int(rng.integers(1, 5))
        shape = [int(rng.integers(1, 4)) for _ in range(ndim)]
        axes, windows, strides, dilations, pads = _geometry(rng, ndim)
        for a in axes:
            shape[a] = int(rng.integers(1, 13))
        keywords: dict = dict(mode=mode, axes=axes)
        if dtype.kind == "f" and rng.random() < 0.5:
            keywords["nan_policy"] = "omit"
        if mode == "lp":
            keywords["p"] = float(rng.choice([1.0, 2.0, 3.0, 0.5, 1.5]))
        if kind == "adaptive":
            keywords["output_size"] = tuple(int(rng.integers(1, shape[a] + 2)) for a in axes)
            if mode in ("max", "min") and rng.random() < 0.7:
                keywords["return_indices"] = True
            if rng.random() < 0.2:
                keywords["dtype"] = str(rng.choice(REQUESTED))
        else:
            keywords.update(window=tuple(windows), stride=tuple(strides), dilation=tuple(dilations),
                            padding=tuple(pads), ceil_mode=bool(rng.random() < 0.4),
                            pad_mode=str(rng.choice(pad_modes)))
            if mode in ("avg", "l2"):
                keywords["count_include_pad"] = bool(rng.random() < 0.5)
                if rng.random() < 0.2:
                    keywords["divisor_override"] = int(rng.integers(1, 7))
            if kind == "pool" and mode in ("max", "min") and rng.random() < 0.7:
                keywords["return_indices"] = True
            if kind == "pool" and rng.random() < 0.2:
                keywords["dtype"] = str(rng.choice(REQUESTED))
            try:
                plan = plan_pool(tuple(shape), **{k: v for k, v in keywords.items() if k != "dtype"})
            except PoolError:
                continue
        x = _values(rng, tuple(shape), dtype, nan=True)
        if rng.random() < 0.15 and x.ndim > 1:  # a non-contiguous view
            x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1)
        case = Case(kind, x, keywords)
        if kind == "backward":
            work = dtype if dtype.kind == "f" else np.float64
            case.grad = rng.integers(-3, 4, size=plan.out_shape).astype(work)  # sums stay exact
        return case


def assert_matches(actual, expected, case: Case) -> None:
    """dtype and shape, then values: bit-identical for max/min (and indices), else close."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), case
        for a, e in zip(actual, expected):
            assert_matches(a, e, case)
        return
    assert isinstance(actual, np.ndarray), (type(actual), case)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype, case)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, case)
    if case.exact or expected.dtype.kind in "biu" and case.x.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=repr(case))
        return
    if expected.dtype.kind in "iu":  # rounded from float sums: may differ at exact .5 boundaries
        assert np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max(initial=0) <= 1, case
        return
    rtol = {2: 4e-3, 4: 1e-4, 8: 1e-11}[expected.dtype.itemsize]
    finite = np.abs(expected[np.isfinite(expected)].astype(np.float64))
    atol = rtol * (1 + finite.max(initial=0))
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=repr(case))
